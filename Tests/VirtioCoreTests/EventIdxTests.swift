import Testing
import VirtioCore

struct NeedEventCase: Sendable, CustomStringConvertible {
    var event: UInt16, new: UInt16, old: UInt16, expected: Bool
    var description: String { "event \(event) old \(old) new \(new)" }
}

@Suite struct EventIdxTests {
    static let needEvent: [NeedEventCase] = [
        .init(event: 0, new: 1, old: 0, expected: true),      // entry 0 written
        .init(event: 1, new: 1, old: 0, expected: false),     // entry 1 not yet
        .init(event: 4, new: 8, old: 2, expected: true),      // passed in a batch
        .init(event: 1, new: 8, old: 2, expected: false),     // already passed before
        .init(event: 7, new: 8, old: 7, expected: true),
        .init(event: 0xffff, new: 1, old: 0xfffe, expected: true),   // across the 16-bit wrap
        .init(event: 0xfffd, new: 1, old: 0xfffe, expected: false),
        .init(event: 0, new: 2, old: 0xffff, expected: true),
        .init(event: 5, new: 5, old: 5, expected: false),     // nothing new
    ]

    @Test(arguments: needEvent)
    func vringNeedEventWraps(_ c: NeedEventCase) {
        #expect(vringNeedEvent(event: c.event, new: c.new, old: c.old) == c.expected)
    }

    /// Publishes one used entry per call, driven from a fresh chain.
    private func complete(_ driver: inout DriverQueue, _ device: inout Virtqueue) throws {
        try driver.addChain([DriverBuffer(0x10000, length: 1)])
        try driver.publish()
        let chain = try #require(try device.popAvailable())
        try device.addUsed(head: chain.head, length: 0)
    }

    @Test func usedEventDecidesWithEventIdx() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue(eventIdx: true)
        try driver.setUsedEvent(0)
        try driver.setAvailFlags(1)  // must be ignored with EVENT_IDX
        try complete(&driver, &device)
        do { let n = device.needsNotification(); #expect(n) }      // entry 0 == used_event
        try complete(&driver, &device)
        do { let n = device.needsNotification(); #expect(!n) }     // entry 1, driver asked for 0
        try driver.setUsedEvent(3)
        try complete(&driver, &device)           // entry 2
        do { let n = device.needsNotification(); #expect(!n) }
        try complete(&driver, &device)           // entry 3
        try complete(&driver, &device)           // entry 4: batch 3...4 passes 3
        do { let n = device.needsNotification(); #expect(n) }
        do { let n = device.needsNotification(); #expect(!n) }     // nothing new since
    }

    @Test func noInterruptFlagWithoutEventIdx() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue(eventIdx: false)
        try driver.setUsedEvent(5)  // ignored without EVENT_IDX
        try complete(&driver, &device)
        do { let n = device.needsNotification(); #expect(n) }
        do { let n = device.needsNotification(); #expect(!n) }     // nothing new since
        try driver.setAvailFlags(1)
        try complete(&driver, &device)
        do { let n = device.needsNotification(); #expect(!n) }
        try driver.setAvailFlags(0)
        try complete(&driver, &device)
        do { let n = device.needsNotification(); #expect(n) }
    }

    @Test func availEventWithEventIdx() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0, startIndex: 0xfffe)
        var device = try driver.deviceQueue(eventIdx: true)
        try complete(&driver, &device)
        try complete(&driver, &device)
        device.disableNotifications()
        #expect(try driver.usedFlags() == 0)         // flags stay 0 with EVENT_IDX
        #expect(try device.enableNotifications() == false)
        #expect(try driver.availEvent() == 0)        // nextAvail after wrapping
        // A chain published before the device re-checks is reported.
        try driver.addChain([DriverBuffer(0x10000, length: 1)])
        try driver.publish()
        #expect(try device.enableNotifications() == true)
    }

    @Test func noNotifyFlagWithoutEventIdx() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 8, at: 0)
        var device = try driver.deviceQueue(eventIdx: false)
        device.disableNotifications()
        #expect(try driver.usedFlags() == 1)
        #expect(try device.enableNotifications() == false)
        #expect(try driver.usedFlags() == 0)
        #expect(try driver.availEvent() == 0)
        try driver.addChain([DriverBuffer(0x10000, length: 1)])
        try driver.publish()
        #expect(try device.enableNotifications() == true)
    }
}
