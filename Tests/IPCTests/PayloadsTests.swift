import Testing
@testable import IPC

@Suite struct PayloadsTests {
    @Test func vringStateRoundTrip() throws {
        let s = VringState(index: 3, num: 0xdead_beef)
        #expect(s.encode().count == 8)
        #expect(try VringState.decode(from: s.encode()) == s)
        #expect(s.encode() == [3, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde])
    }

    @Test func vringAddressRoundTrip() throws {
        let a = VringAddress(index: 1, flags: 0, descriptorTable: 0x1000, usedRing: 0x3000, availableRing: 0x2000, logGuestAddress: 7)
        let bytes = a.encode()
        #expect(bytes.count == 40)
        #expect(try VringAddress.decode(from: bytes) == a)
        // Layout: index, flags, desc, used, avail, log.
        #expect(bytes[8] == 0x00 && bytes[9] == 0x10)
        #expect(bytes[17] == 0x30 && bytes[25] == 0x20 && bytes[32] == 7)
    }

    @Test func vringFdRoundTrip() throws {
        for p in [VringFdPayload(index: 0, noFd: false), VringFdPayload(index: 255, noFd: true)] {
            #expect(try VringFdPayload.decode(from: p.encode()) == p)
        }
        #expect(VringFdPayload(index: 2, noFd: true).value == 0x102)
        #expect(throws: MessageFault.reservedBits(0x200)) { try VringFdPayload.decode(from: encodeU64(0x201)) }
    }

    @Test func memoryTableRoundTrip() throws {
        let t = MemoryTable(regions: [
            MemoryRegion(guestAddress: 0, size: 0x10_0000, userAddress: 0x7f00_0000_0000, mmapOffset: 0),
            MemoryRegion(guestAddress: 0x1_0000_0000, size: 0x1000, userAddress: 0x7f10_0000_0000, mmapOffset: 0x10_0000),
        ])
        let bytes = t.encode()
        #expect(bytes.count == 8 + 64)
        #expect(try MemoryTable.decode(from: bytes) == t)
        try t.validate()
    }

    @Test func deviceConfigRoundTrip() throws {
        let c = DeviceConfig(offset: 4, size: 3, flags: 1, data: [9, 8, 7])
        #expect(c.encode().count == 15)
        #expect(try DeviceConfig.decode(from: c.encode()) == c)
    }

    @Test func inflightRoundTrip() throws {
        let d = InflightDescription(mmapSize: 1 << 20, mmapOffset: 4096, numQueues: 2, queueSize: 128)
        #expect(d.encode().count == 24)
        #expect(try InflightDescription.decode(from: d.encode()) == d)
    }

    @Test func u64RoundTrip() throws {
        #expect(try decodeU64(encodeU64(0x0102_0304_0506_0708)) == 0x0102_0304_0506_0708)
    }

    @Test(arguments: [
        ([MemoryRegion(guestAddress: 0, size: 0, userAddress: 0, mmapOffset: 0)], MessageFault.emptyRegion(index: 0)),
        ([MemoryRegion(guestAddress: .max, size: 2, userAddress: 0, mmapOffset: 0)], .regionOverflow(index: 0)),
        ([MemoryRegion(guestAddress: 0, size: 3, userAddress: .max - 1, mmapOffset: 0)], .regionOverflow(index: 0)),
        ([MemoryRegion(guestAddress: 0, size: 2, userAddress: 0, mmapOffset: .max)], .regionOverflow(index: 0)),
        ([MemoryRegion(guestAddress: 0, size: 0x2000, userAddress: 0, mmapOffset: 0),
          MemoryRegion(guestAddress: 0x1000, size: 0x1000, userAddress: 0x10000, mmapOffset: 0)], .regionsOverlap(0, 1)),
        ([MemoryRegion(guestAddress: 0, size: 0x1000, userAddress: 0x5000, mmapOffset: 0),
          MemoryRegion(guestAddress: 0x1000, size: 0x1000, userAddress: 0x4800, mmapOffset: 0)], .regionsOverlap(0, 1)),
    ])
    func memoryTableRejects(regions: [MemoryRegion], fault: MessageFault) {
        #expect(throws: fault) { try MemoryTable(regions: regions).validate() }
    }

    @Test func memoryTableCountLimits() {
        #expect(throws: MessageFault.regionCount(0)) { try MemoryTable.decode(from: MemoryTable(regions: []).encode()) }
        let nine = (0..<9).map { MemoryRegion(guestAddress: UInt64($0) << 20, size: 4096, userAddress: UInt64($0) << 20, mmapOffset: 0) }
        #expect(throws: MessageFault.regionCount(9)) { try MemoryTable.decode(from: MemoryTable(regions: nine).encode()) }
        #expect(throws: MessageFault.regionCount(9)) { try MemoryTable(regions: nine).validate() }
    }

    @Test(arguments: [
        (DeviceConfig(offset: 0, size: 257, data: []), MessageFault.configTooLarge(257)),
        (DeviceConfig(offset: 250, size: 10, data: []), .configOutOfBounds(offset: 250, size: 10)),
        (DeviceConfig(offset: .max, size: 1, data: []), .configOutOfBounds(offset: .max, size: 1)),
        (DeviceConfig(offset: 0, size: 1, flags: 2, data: [0]), .configFlags(2)),
        (DeviceConfig(offset: 0, size: 2, data: [0]), .wrongSize(expected: 2, actual: 1)),
    ])
    func configRejects(config: DeviceConfig, fault: MessageFault) {
        #expect(throws: fault) { try config.validate() }
    }

    @Test func readerNeverTraps() {
        var r = ByteReader([1, 2])
        #expect(r.u64() == 0x0201)
        #expect(r.u32() == 0)
        #expect(r.rest() == [])
    }
}
