import Testing
import VirtioCore

@Suite struct VirtqueueTests {
    @Test(arguments: [UInt32(0), 3, 6, 65536, 32769, UInt32.max])
    func rejectsBadSizes(_ size: UInt32) throws {
        let memory = try makeMemory()
        #expect(throws: VirtqueueError.invalidSize(size)) {
            try Virtqueue(memory: memory, size: size, descriptorTable: 0, availableRing: 0x10000,
                          usedRing: 0x20000, eventIdx: false)
        }
    }

    @Test(arguments: [UInt32(1), 2, 256, 32768])
    func acceptsPowersOfTwo(_ size: UInt32) throws {
        let memory = try makeMemory()
        let q = try Virtqueue(memory: memory, size: size, descriptorTable: 0, availableRing: 0x80000,
                              usedRing: 0x90000, eventIdx: true)
        #expect(q.size == UInt16(size))
    }

    @Test func ringAlignmentAndExtents() throws {
        let memory = try makeMemory()
        func make(_ desc: GuestAddress, _ avail: GuestAddress, _ used: GuestAddress) throws {
            _ = try Virtqueue(memory: memory, size: 256, descriptorTable: desc, availableRing: avail, usedRing: used,
                              eventIdx: false)
        }
        // Alignment from 2.7: descriptor table 16, avail 2, used 4.
        #expect(throws: VirtqueueError.misaligned(.descriptorTable, 0x8)) { try make(0x8, 0x10000, 0x20000) }
        #expect(throws: VirtqueueError.misaligned(.availableRing, 0x10001)) { try make(0, 0x10001, 0x20000) }
        #expect(throws: VirtqueueError.misaligned(.usedRing, 0x20002)) { try make(0, 0x10000, 0x20002) }
        try make(0, 0x10002, 0x20004)
        // Whole extents inside memory: used ring is 6 + 8 * 256 bytes.
        let end = UInt64(1 << 20)
        #expect(throws: VirtqueueError.ringOutOfMemory(.usedRing, GuestAddress(end - 2048), length: 6 + 2048)) {
            try make(0, 0x10000, GuestAddress(end - 2048))
        }
        try make(0, 0x10000, GuestAddress(end - 2056))
        #expect(throws: VirtqueueError.ringOutOfMemory(.availableRing, GuestAddress(end - 2), length: 6 + 512)) {
            try make(0, GuestAddress(end - 2), 0x20000)
        }
        #expect(throws: VirtqueueError.ringOutOfMemory(.descriptorTable, GuestAddress(UInt64.max - 15), length: 4096)) {
            try make(GuestAddress(UInt64.max - 15), 0x10000, 0x20000)
        }
    }

    @Test func availIndexJumpIsAnError() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue()
        try driver.setAvailIndex(9)
        #expect(throws: VirtqueueError.availIndexJump(nextAvail: 0, availIndex: 9, size: 8)) { try device.popAvailable() }
        #expect(device.nextAvail == 0)
        // Going backwards looks like a jump of almost 65536.
        try driver.setAvailIndex(0xffff)
        #expect(throws: VirtqueueError.availIndexJump(nextAvail: 0, availIndex: 0xffff, size: 8)) { try device.popAvailable() }
        // Exactly N pending is fine.
        try driver.setAvailIndex(8)
        #expect(try device.pendingCount() == 8)
    }

    /// avail.idx is read again only once the entries seen at the last read are taken:
    /// chains published meanwhile are found then, and a jump is still caught then.
    @Test func availIndexIsReadAgainOnceKnownEntriesAreTaken() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue()
        for i in 0..<2 { try driver.addChain([DriverBuffer(GuestAddress(0x10000 + UInt64(i) * 0x100), length: 8)]) }
        try driver.publish()
        #expect(try device.popAvailable()?.head == 0)
        // Published after the device read avail.idx (2): found once head 1 is taken.
        try driver.addChain([DriverBuffer(0x10200, length: 8)])
        try driver.publish()
        #expect(try device.popAvailable()?.head == 1)
        #expect(try device.popAvailable()?.head == 2)
        #expect(try device.popAvailable() == nil)
        // Putting a chain back (nextAvail moved) reads avail.idx again.
        device.nextAvail &-= 1
        #expect(try device.pendingCount() == 1)
        #expect(try device.popAvailable()?.head == 2)
        // A jump published later is an error at the next read.
        try driver.setAvailIndex(3 + 9)
        #expect(throws: VirtqueueError.availIndexJump(nextAvail: 3, availIndex: 12, size: 8)) { try device.popAvailable() }
    }

    @Test func sixteenBitIndicesWrapAround() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 4, at: 0, startIndex: 65533)
        var device = try driver.deviceQueue()
        #expect(device.nextAvail == 65533)
        for round in 0..<10 {
            let buffer = GuestAddress(0x10000 + UInt64(round) * 0x100)
            let head = try driver.addChain([DriverBuffer(buffer, length: 8, writable: true)])
            try driver.publish()
            let chain = try #require(try device.popAvailable())
            #expect(chain.head == head && chain.buffers.map(\.address) == [buffer])
            try device.addUsed(head: chain.head, length: UInt32(round))
            let used = try #require(try driver.popUsed())
            #expect(used.id == UInt32(head) && used.length == UInt32(round))
        }
        #expect(device.nextAvail == 65533 &+ 10)
        #expect(device.nextUsed == 7)
        #expect(try driver.usedIndex() == 7)
    }

    @Test func vhostUserBaseIsSettable() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0, startIndex: 100)
        var device = try driver.deviceQueue()
        try driver.addChain([DriverBuffer(0x10000, length: 1)])
        try driver.addChain([DriverBuffer(0x10000, length: 2)])
        try driver.publish()
        device.nextAvail = 101  // as if restored by SET_VRING_BASE after one chain
        #expect(try device.popAvailable()?.readableLength == 2)
        #expect(device.nextAvail == 102)
        #expect(try device.popAvailable() == nil)
    }

    @Test func malformedHeadCanBeReturned() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue()
        try driver.writeDescriptor(index: 2, address: 0x10000, length: 16, flags: .next, next: 2)
        try driver.offer(head: 2)
        try driver.addChain([DriverBuffer(0x10000, length: 1)])
        try driver.publish()
        #expect(throws: VirtqueueError.malformedChain(head: 2, .loop)) { try device.popAvailable() }
        try device.addUsed(head: 2, length: 0)
        // The next chain is still served.
        #expect(try device.popAvailable()?.readableLength == 1)
        #expect(try driver.popUsed()?.id == 2)
    }
}
