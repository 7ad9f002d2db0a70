import Testing
import VirtioCore

@Suite struct DriverQueueTests {
    @Test func layoutIsAlignedAndContiguous() throws {
        let driver = try DriverQueue(memory: makeMemory(), size: 2, at: 0x1000)
        #expect(driver.descriptorTable == 0x1000)
        #expect(driver.availableRing == 0x1020)          // 16 * 2
        #expect(driver.usedRing == 0x102c)               // 0x1020 + 6 + 2 * 2, up to 4
        #expect(driver.end == 0x1042)                    // + 6 + 8 * 2
        _ = try driver.deviceQueue()                     // accepted by the device side
    }

    @Test func ringsStartZeroedAtTheStartIndex() throws {
        let memory = try makeMemory()
        try memory.write([UInt8](repeating: 0xff, count: 0x400), at: 0)
        let driver = try DriverQueue(memory: memory, size: 8, at: 0, startIndex: 77)
        #expect(try driver.usedIndex() == 77)
        #expect(try memory.load(UInt16.self, at: driver.availableRing.checkedAdd(2)!) == 77)
        #expect(try driver.usedFlags() == 0)
        #expect(try memory.load(UInt64.self, at: 0) == 0)
    }

    @Test func ringOutsideMemoryIsAnError() throws {
        #expect(throws: MemoryMapError.self) { try DriverQueue(memory: makeMemory(size: 0x1000), size: 256, at: 0) }
    }

    @Test func descriptorsAreRoundRobin() throws {
        var driver = try DriverQueue(memory: makeMemory(), size: 4, at: 0)
        #expect(try driver.addChain([DriverBuffer(0x10000, length: 1), DriverBuffer(0x10000, length: 1)]) == 0)
        #expect(try driver.addChain([DriverBuffer(0x10000, length: 1), DriverBuffer(0x10000, length: 1), DriverBuffer(0x10000, length: 1)]) == 2)
        #expect(driver.nextFreeDescriptor == 1)
        #expect(driver.availIndex == 2)
    }
}
