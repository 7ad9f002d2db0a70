import CShim
import Glibc
import Testing
import VirtioCore
@testable import BlockWorker

/// Malformed chains, broken rings, batching and notification suppression.
@Suite struct QueueHandlerTests {
    enum Expect: CustomStringConvertible {
        /// Answered: this status byte, used len 1.
        case status(UInt8)
        /// Returned unanswered with used len 0.
        case returnedEmpty
        var description: String {
            switch self { case let .status(s): return "status \(s)"; case .returnedEmpty: return "len 0" }
        }
    }

    /// One malformed case: writes raw descriptors at table indices 0... and offers head 0.
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let expect: Expect
        let build: @Sendable (inout Harness, _ status: GuestAddress) throws -> Void
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "next loops back", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: s, length: 1, flags: [.write, .next], next: 0)
        },
        Case(name: "next outside the table", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 500)
        },
        Case(name: "buffer outside guest memory", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: GuestAddress(0xffff_0000), length: 512, flags: [.write, .next], next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "buffer straddling the end of memory", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: GuestAddress((1 << 20) - 256), length: 512, flags: [.write, .next], next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "address + length wraps", expect: .returnedEmpty) { h, s in
            try h.driver.writeDescriptor(index: 0, address: GuestAddress(.max - 4), length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: s, length: 1, flags: .write)
        },
        Case(name: "readable after writable", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: s, length: 1, flags: [.write, .next], next: 1)
            try h.driver.writeDescriptor(index: 1, address: hd, length: 16, flags: [])
        },
        Case(name: "indirect with next", expect: .returnedEmpty) { h, s in
            let table = try h.buffer(32)
            try h.driver.writeDescriptor(index: 0, address: table, length: 32, flags: [.indirect, .next], next: 1)
        },
        Case(name: "nested indirect", expect: .returnedEmpty) { h, s in
            let table = try h.buffer(32)
            try h.driver.writeDescriptor(index: 0, address: table, length: 16, flags: .indirect, table: table)
            try h.driver.writeDescriptor(index: 0, address: table, length: 16, flags: .indirect)
        },
        Case(name: "indirect table length not a multiple of 16", expect: .returnedEmpty) { h, s in
            let table = try h.buffer(32)
            try h.driver.writeDescriptor(index: 0, address: table, length: 20, flags: .indirect)
        },
        Case(name: "no status byte (all readable)", expect: .returnedEmpty) { h, s in
            let hd = try h.header(type: 1, sector: 0)
            let d = try h.buffer(512)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: d, length: 512, flags: [])
        },
        Case(name: "header too short", expect: .status(1)) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 8, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: s, length: 1, flags: .write)
        },
        Case(name: "no header at all", expect: .status(1)) { h, s in
            try h.driver.writeDescriptor(index: 0, address: s, length: 1, flags: .write)
        },
        Case(name: "IN with device-readable data (wrong direction)", expect: .status(1)) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            let d = try h.buffer(512)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: d, length: 512, flags: .next, next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "OUT with device-writable data (wrong direction)", expect: .status(1)) { h, s in
            let hd = try h.header(type: 1, sector: 0)
            let d = try h.buffer(512)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: d, length: 512, flags: [.write, .next], next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "IN of a partial sector", expect: .status(1)) { h, s in
            let hd = try h.header(type: 0, sector: 0)
            let d = try h.buffer(100)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: d, length: 100, flags: [.write, .next], next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "discard segment data not a multiple of 16", expect: .status(1)) { h, s in
            let hd = try h.header(type: 11, sector: 0)
            let d = try h.buffer(20)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: d, length: 20, flags: .next, next: 2)
            try h.driver.writeDescriptor(index: 2, address: s, length: 1, flags: .write)
        },
        Case(name: "discard without segments", expect: .status(1)) { h, s in
            let hd = try h.header(type: 11, sector: 0)
            try h.driver.writeDescriptor(index: 0, address: hd, length: 16, flags: .next, next: 1)
            try h.driver.writeDescriptor(index: 1, address: s, length: 1, flags: .write)
        },
    ]

    @Test(arguments: cases)
    func malformedChain(_ c: Case) throws {
        var h = try Harness()
        let s = try h.statusByte()
        try c.build(&h, s)
        try h.driver.offer(head: 0)
        try h.driver.publish()
        h.handler.processBatch()
        let used = try h.driver.popUsed()
        #expect(used?.id == 0)
        switch c.expect {
        case let .status(expected):
            #expect(used?.length == 1)
            #expect(try h.status(at: s) == expected)
        case .returnedEmpty:
            #expect(used?.length == 0)
            #expect(try h.status(at: s) == 0xff)    // nothing written into the chain
        }
        #expect(h.handler.broken == nil)
        // The image is untouched and the queue still serves the next request.
        #expect(h.image.read(offset: 0, count: 512) == pattern(sector: 0, count: 512))
        h.driver.nextFreeDescriptor = 4
        let r = try h.request(type: 0, sector: 1, dataLength: 512, dataWritable: true)
        #expect(r.status == 0)
    }

    @Test func availIndexJumpStopsTheQueue() throws {
        var h = try Harness()
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        try h.driver.setAvailIndex(h.driver.availIndex &+ 100)   // more than the ring holds
        h.handler.processBatch()
        #expect(h.handler.broken != nil)
        #expect(h.counters.brokenRings == 1)
        // Nothing consumed; later batches do nothing.
        #expect(h.handler.queue.nextAvail == 1)
        #expect(h.handler.processBatch() == 0)
        h.handler.drain()
        #expect(h.handler.queue.nextAvail == 1)
    }

    @Test func headOutsideTheTableStopsTheQueue() throws {
        var h = try Harness()
        try h.driver.offer(head: 999)
        try h.driver.publish()
        h.handler.processBatch()
        #expect(h.handler.broken != nil)
        #expect(try h.driver.popUsed() == nil)
    }

    /// N requests made available at once: one batch, one used.idx publish, one interrupt.
    @Test func batchCompletesWithOnePublishAndOneInterrupt() throws {
        var h = try Harness(queueSize: 32)
        let call = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        defer { close(call) }
        h.handler.callFD = call
        var statuses: [GuestAddress] = []
        for i in 0..<8 {
            let hd = try h.header(type: 0, sector: UInt64(i))
            let d = try h.buffer(512)
            let s = try h.statusByte()
            statuses.append(s)
            try h.driver.addChain([DriverBuffer(hd, length: 16), DriverBuffer(d, length: 512, writable: true),
                                   DriverBuffer(s, length: 1, writable: true)])
        }
        try h.driver.publish()
        let usedBefore = try h.driver.usedIndex()
        #expect(h.handler.processBatch() == 8)
        #expect(try h.driver.usedIndex() == usedBefore &+ 8)
        #expect(h.counters[BlockCounter.batches] == 1)
        #expect(h.counters.interrupts == 1)
        var counter: UInt64 = 0
        #expect(read(call, &counter, 8) == 8)
        #expect(counter == 1)
        for s in statuses { #expect(try h.status(at: s) == 0) }
        for _ in 0..<8 { #expect(try h.driver.popUsed()?.length == 513) }
    }

    @Test func eventIdxNotifiesThroughCallFd() throws {
        var h = try Harness(eventIdx: true)
        let call = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        defer { close(call) }
        h.handler.callFD = call
        try h.driver.setUsedEvent(2)
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        #expect(h.counters.interrupts == 0)
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        #expect(h.counters.interrupts == 1)
        // drain() re-enables notifications by publishing avail_event = next avail.
        h.handler.drain()
        #expect(try h.driver.availEvent() == 3)
    }

    @Test func noInterruptFlagWithoutEventIdx() throws {
        var h = try Harness()
        let call = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        defer { close(call) }
        h.handler.callFD = call
        try h.driver.setAvailFlags(1)
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        #expect(h.counters.interrupts == 0)
        try h.driver.setAvailFlags(0)
        _ = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        #expect(h.counters.interrupts == 1)
    }

    @Test func batchNeverExceedsTheRing() throws {
        var h = try Harness(queueSize: 4)
        for _ in 0..<4 {
            let hd = try h.header(type: 4, sector: 0)
            let s = try h.statusByte()
            try h.driver.addChain([DriverBuffer(hd, length: 16), DriverBuffer(s, length: 1, writable: true)])
        }
        try h.driver.publish()
        #expect(h.handler.processBatch() == 4)
        #expect(h.handler.broken == nil)
    }

    @Test func writethroughWhenNeitherFlushNorWceNegotiated() throws {
        let h = try Harness(features: 0)
        #expect(h.state.writethrough)
        let h2 = try Harness(features: BlockFeature.flush)
        #expect(!h2.state.writethrough)
        h2.state.writeback = false
        #expect(h2.state.writethrough)
    }
}
