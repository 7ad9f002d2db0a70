import Testing
import VirtioCore

private let queueSize: UInt16 = 8
private let data: GuestAddress = 0x10000
private let table: GuestAddress = 0x20000
private let memorySize: UInt64 = 1 << 20

/// A malformed chain, written by `build` as a misbehaving driver would.
struct ChainCase: Sendable, CustomStringConvertible {
    var description: String
    var build: @Sendable (inout DriverQueue) throws -> Void
    var expected: DescriptorChainError
}

@Suite struct DescriptorChainTests {
    static let malformed: [ChainCase] = [
        .init(description: "loop: next points back", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: .next, next: 1)
            try q.writeDescriptor(index: 1, address: data, length: 16, flags: .next, next: 0)
            try q.offer(head: 0)
        }, expected: .loop),
        .init(description: "loop: next points at itself", build: { q in
            try q.writeDescriptor(index: 3, address: data, length: 16, flags: .next, next: 3)
            try q.offer(head: 3)
        }, expected: .loop),
        .init(description: "next index >= N", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: .next, next: 8)
            try q.offer(head: 0)
        }, expected: .indexOutOfRange(index: 8, tableSize: 8)),
        .init(description: "head index >= N", build: { q in
            try q.offer(head: 0xffff)
        }, expected: .indexOutOfRange(index: 0xffff, tableSize: 8)),
        .init(description: "indirect nested", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: .indirect, table: table)
            try q.writeDescriptor(index: 0, address: table, length: 16, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .indirectNested),
        .init(description: "indirect with next", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: [], table: table)
            try q.writeDescriptor(index: 0, address: table, length: 16, flags: [.indirect, .next], next: 1)
            try q.offer(head: 0)
        }, expected: .indirectWithNext),
        .init(description: "indirect length not a multiple of 16", build: { q in
            try q.writeDescriptor(index: 0, address: table, length: 20, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .indirectBadLength(20)),
        .init(description: "zero-length indirect", build: { q in
            try q.writeDescriptor(index: 0, address: table, length: 0, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .indirectBadLength(0)),
        .init(description: "indirect table outside memory", build: { q in
            try q.writeDescriptor(index: 0, address: GuestAddress(memorySize - 16), length: 32, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .indirectOutOfMemory(GuestAddress(memorySize - 16), length: 32)),
        .init(description: "indirect next past the table", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: .next, next: 2, table: table)
            try q.writeDescriptor(index: 0, address: table, length: 32, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .indexOutOfRange(index: 2, tableSize: 2)),
        .init(description: "indirect loop", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 16, flags: .next, next: 1, table: table)
            try q.writeDescriptor(index: 1, address: data, length: 16, flags: .next, next: 0, table: table)
            try q.writeDescriptor(index: 0, address: table, length: 32, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .loop),
        .init(description: "indirect chain longer than the queue size", build: { q in
            for i in 0..<9 {
                try q.writeDescriptor(index: UInt16(i), address: data, length: 1, flags: i < 8 ? .next : [],
                                      next: UInt16(i + 1), table: table)
            }
            try q.writeDescriptor(index: 0, address: table, length: 9 * 16, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .chainTooLong(limit: 8)),
        .init(description: "direct plus indirect longer than the queue size", build: { q in
            for i in 0..<4 {
                try q.writeDescriptor(index: UInt16(i), address: data, length: 1, flags: i < 3 ? .next : [],
                                      next: UInt16(i + 1), table: table)
            }
            for i in 0..<5 {
                try q.writeDescriptor(index: UInt16(i), address: data, length: 1, flags: .next, next: UInt16(i + 1))
            }
            try q.writeDescriptor(index: 5, address: table, length: 4 * 16, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .chainTooLong(limit: 8)),
        .init(description: "buffer outside memory", build: { q in
            try q.writeDescriptor(index: 0, address: GuestAddress(memorySize - 8), length: 16, flags: [])
            try q.offer(head: 0)
        }, expected: .bufferOutOfMemory(GuestAddress(memorySize - 8), length: 16)),
        .init(description: "buffer address + length wraps", build: { q in
            try q.writeDescriptor(index: 0, address: GuestAddress(UInt64.max - 1), length: 16, flags: [])
            try q.offer(head: 0)
        }, expected: .bufferOutOfMemory(GuestAddress(UInt64.max - 1), length: 16)),
        .init(description: "buffer in an indirect table outside memory", build: { q in
            try q.writeDescriptor(index: 0, address: GuestAddress(memorySize), length: 1, flags: [], table: table)
            try q.writeDescriptor(index: 0, address: table, length: 16, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .bufferOutOfMemory(GuestAddress(memorySize), length: 1)),
        .init(description: "readable after writable", build: { q in
            try q.addChain([DriverBuffer(data, length: 4, writable: true), DriverBuffer(data, length: 4)])
        }, expected: .readableAfterWritable(position: 1)),
        .init(description: "readable after writable across direct and indirect", build: { q in
            try q.writeDescriptor(index: 0, address: data, length: 4, flags: [], table: table)
            try q.writeDescriptor(index: 0, address: data, length: 4, flags: [.write, .next], next: 1)
            try q.writeDescriptor(index: 1, address: table, length: 16, flags: .indirect)
            try q.offer(head: 0)
        }, expected: .readableAfterWritable(position: 1)),
    ]

    @Test(arguments: malformed)
    func malformedChainsAreTypedErrors(_ c: ChainCase) throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        try c.build(&driver)
        try driver.publish()
        #expect(throws: VirtqueueError.self) { try device.popAvailable() }
        // The entry is consumed; the error names the head and the fault.
        #expect(device.nextAvail == 1)
        do {
            var again = try driver.deviceQueue()
            _ = try again.popAvailable()
        } catch let VirtqueueError.malformedChain(_, error) {
            #expect(error == c.expected)
        }
    }

    @Test func totalLengthAbove32BitsIsRejected() throws {
        // A sparse 3 GiB memfd: two buffers of 2 GiB sum to 2^32 bytes.
        let memory = try makeMemory(size: 3 << 30)
        var driver = try DriverQueue(memory: memory, size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        try driver.addChain([DriverBuffer(0x10000, length: 0x8000_0000), DriverBuffer(0x10000, length: 0x8000_0000, writable: true)])
        try driver.publish()
        #expect(throws: VirtqueueError.malformedChain(head: 0, .lengthOverflow)) { try device.popAvailable() }
        try driver.addChain([DriverBuffer(0x10000, length: 0x8000_0000), DriverBuffer(0x10000, length: 0x7fff_ffff, writable: true)])
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        #expect(chain.readableLength == 0x8000_0000 && chain.writableLength == 0x7fff_ffff)
    }

    @Test func directChain() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        let head = try driver.addChain([
            DriverBuffer(0x10000, length: 16), DriverBuffer(0x11000, length: 512),
            DriverBuffer(0x12000, length: 1, writable: true),
        ])
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        #expect(chain.head == head)
        #expect(chain.count == 3)
        #expect(chain.readableCount == 2)
        #expect(Array(chain.readable.map(\.address)) == [0x10000, 0x11000])
        #expect(Array(chain.writable.map(\.length)) == [1])
        #expect(chain.readableLength == 528 && chain.writableLength == 1)
        #expect(try device.popAvailable() == nil)
    }

    @Test func indirectChainIgnoresWriteFlagOnTheTableDescriptor() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        let head = try driver.addIndirectChain([
            DriverBuffer(0x10000, length: 16), DriverBuffer(0x11000, length: 4096, writable: true),
            DriverBuffer(0x13000, length: 1, writable: true),
        ], table: table)
        // Set WRITE on the descriptor that points at the table: must be ignored (2.7.5.3.2).
        try driver.writeDescriptor(index: head, address: table, length: 48, flags: [.indirect, .write])
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        #expect(chain.head == head)
        #expect(chain.map(\.writable) == [false, true, true])
        #expect(chain.readableLength == 16 && chain.writableLength == 4097)
    }

    @Test func directDescriptorsFollowedByIndirectTable() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        try driver.writeDescriptor(index: 0, address: 0x13000, length: 2, flags: .write, table: table)
        try driver.writeDescriptor(index: 4, address: data, length: 16, flags: .next, next: 6)
        try driver.writeDescriptor(index: 6, address: table, length: 16, flags: .indirect)
        try driver.offer(head: 4)
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        #expect(chain.head == 4)
        #expect(chain.buffers.map(\.address) == [data, 0x13000])
        #expect(chain.readableCount == 1)
    }

    @Test func fullLengthDirectChainIsAccepted() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        try driver.addChain((0..<8).map { DriverBuffer(GuestAddress(0x10000 + UInt64($0) * 0x100), length: 0x100) })
        try driver.publish()
        #expect(try device.popAvailable()?.count == 8)
    }

    /// Past the inline capacity the buffers spill to an array: order and the
    /// readable/writable split must be the same either way.
    @Test func longChainKeepsOrderPastInlineCapacity() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        let addresses = (0..<7).map { GuestAddress(0x10000 + UInt64($0) * 0x100) }
        try driver.addChain(addresses.enumerated().map { DriverBuffer($1, length: 0x10, writable: $0 >= 3) })
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        #expect(chain.count == 7 && chain.readableCount == 3)
        #expect(chain.buffers.map(\.address) == addresses)
        #expect(Array(chain.writable.map(\.address)) == Array(addresses[3...]))
        #expect(chain.readableLength == 0x30 && chain.writableLength == 0x40)
    }

    /// The chain is a copy: rewriting descriptors after the pop changes nothing.
    @Test func chainIsImmuneToLaterGuestWrites() throws {
        var driver = try DriverQueue(memory: makeMemory(size: memorySize), size: queueSize, at: 0)
        var device = try driver.deviceQueue()
        try driver.addChain([DriverBuffer(0x10000, length: 16)])
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        try driver.writeDescriptor(index: 0, address: GuestAddress(UInt64.max), length: .max, flags: .next, next: 0)
        #expect(chain.buffers.map(\.address) == [0x10000])
        #expect(chain.readableLength == 16)
    }
}
