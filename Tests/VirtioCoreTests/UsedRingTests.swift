import Testing
import VirtioCore

@Suite struct UsedRingTests {
    @Test func batchIsInvisibleUntilPublished() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue()
        var heads: [UInt16] = []
        for i in 0..<3 { heads.append(try driver.addChain([DriverBuffer(GuestAddress(0x10000 + UInt64(i)), length: 1, writable: true)])) }
        try driver.publish()
        var chains: [DescriptorChain] = []
        while let c = try device.popAvailable() { chains.append(c) }
        #expect(chains.map(\.head) == heads)
        for (i, c) in chains.enumerated() { try device.stageUsed(head: c.head, length: UInt32(10 + i)) }
        #expect(try driver.usedIndex() == 0)
        #expect(try driver.popUsed() == nil)
        device.publishUsed()
        #expect(try driver.usedIndex() == 3)
        for (i, h) in heads.enumerated() {
            let e = try #require(try driver.popUsed())
            #expect(e.id == UInt32(h) && e.length == UInt32(10 + i))
        }
        #expect(try driver.popUsed() == nil)
    }

    @Test func headOutOfRangeIsRejected() throws {
        var device = try DriverQueue(memory: makeMemory(), size: 8, at: 0).deviceQueue()
        #expect(throws: VirtqueueError.usedHeadOutOfRange(8)) { try device.addUsed(head: 8, length: 0) }
    }

    @Test func stagingMoreThanTheRingHoldsIsRejected() throws {
        var device = try DriverQueue(memory: makeMemory(), size: 4, at: 0).deviceQueue()
        for _ in 0..<4 { try device.stageUsed(head: 0, length: 0) }
        #expect(throws: VirtqueueError.usedRingOverflow) { try device.stageUsed(head: 0, length: 0) }
        device.publishUsed()
        try device.stageUsed(head: 0, length: 0)
    }
}
