import Testing
@testable import VMM

/// A minimal MP table reader, written from the spec, to check what MPTable writes.
private struct ParsedMPTable {
    var tableAddress: UInt32 = 0
    var tableLength = 0
    var entryCount = 0
    var lapicAddress: UInt32 = 0
    var processors: [(apicID: UInt8, version: UInt8, flags: UInt8)] = []
    var buses: [(id: UInt8, type: String)] = []
    var ioapics: [(id: UInt8, version: UInt8, flags: UInt8, address: UInt32)] = []
    var ioInterrupts: [(type: UInt8, busIRQ: UInt8, ioapic: UInt8, pin: UInt8)] = []
    var localInterrupts: [(type: UInt8, lapic: UInt8, lint: UInt8)] = []

    init(memory: GuestMemory, at address: UInt64) throws {
        let pointer = try memory.read(at: address, count: 16)
        #expect(Array(pointer[0..<4]) == Array("_MP_".utf8))
        #expect(pointer.reduce(UInt8(0), &+) == 0)
        #expect(pointer[8] == 1 && pointer[9] == 4)
        tableAddress = try memory.readValue(UInt32.self, at: address + 4)
        let header = try memory.read(at: UInt64(tableAddress), count: 44)
        #expect(Array(header[0..<4]) == Array("PCMP".utf8))
        #expect(header[6] == 4)
        tableLength = Int(try memory.readValue(UInt16.self, at: UInt64(tableAddress) + 4))
        entryCount = Int(try memory.readValue(UInt16.self, at: UInt64(tableAddress) + 34))
        lapicAddress = try memory.readValue(UInt32.self, at: UInt64(tableAddress) + 36)
        let table = try memory.read(at: UInt64(tableAddress), count: tableLength)
        #expect(table.reduce(UInt8(0), &+) == 0)

        var offset = 44
        for _ in 0..<entryCount {
            let e = Array(table[offset...])
            switch e[0] {
            case 0:
                processors.append((e[1], e[2], e[3])); offset += 20
            case 1:
                buses.append((e[1], String(decoding: e[2..<8], as: UTF8.self))); offset += 8
            case 2:
                let address = UInt32(e[4]) | UInt32(e[5]) << 8 | UInt32(e[6]) << 16 | UInt32(e[7]) << 24
                ioapics.append((e[1], e[2], e[3], address)); offset += 8
            case 3:
                ioInterrupts.append((e[1], e[5], e[6], e[7])); offset += 8
            case 4:
                localInterrupts.append((e[1], e[6], e[7])); offset += 8
            default:
                Issue.record("unknown entry type \(e[0]) at \(offset)"); return
            }
        }
        #expect(offset == tableLength)
    }
}

@Suite struct MPTableTests {
    @Test func maximumFitsInTheEBDA() throws {
        #expect(MPTable.maxCPUs == 40)
        let bytes = try MPTable.build(vcpuCount: MPTable.maxCPUs)
        #expect(bytes.count <= 1024)
        #expect(bytes.count + MPTable.processorEntrySize > 1024)
    }

    @Test func rejectsZeroAndTooManyCPUs() {
        #expect(throws: MPTableError.noCPUs) { try MPTable.build(vcpuCount: 0) }
        #expect(throws: MPTableError.tooManyCPUs(requested: 41, maximum: 40)) { try MPTable.build(vcpuCount: 41) }
    }

    @Test func checksumMakesSumZero() {
        let bytes: [UInt8] = [1, 2, 250, 7]
        #expect((bytes + [MPTable.checksum(bytes)]).reduce(UInt8(0), &+) == 0)
    }

    @Test(arguments: [1, 2, 4, 40])
    func parsesBack(vcpus: Int) throws {
        let memory = try GuestMemory(size: 16 << 20)
        try MPTable.write(to: memory, vcpuCount: vcpus)
        let mp = try ParsedMPTable(memory: memory, at: Layout.ebdaStart)

        #expect(mp.tableAddress == UInt32(Layout.ebdaStart) + 16)
        #expect(UInt64(mp.tableAddress) + UInt64(mp.tableLength) <= Layout.lowMemoryEnd)
        #expect(mp.entryCount == vcpus + 1 + 1 + 16 + 2)
        #expect(mp.lapicAddress == 0xfee0_0000)

        #expect(mp.processors.map(\.apicID) == (0..<vcpus).map(UInt8.init))
        #expect(mp.processors.allSatisfy { $0.version == 0x14 })
        #expect(mp.processors.first?.flags == 0b11)                      // enabled + BSP
        #expect(mp.processors.dropFirst().allSatisfy { $0.flags == 0b01 }) // enabled only

        #expect(mp.buses.count == 1 && mp.buses[0].id == 0 && mp.buses[0].type == "ISA   ")
        #expect(mp.ioapics.count == 1)
        #expect(mp.ioapics[0].id == UInt8(vcpus) && mp.ioapics[0].version == 0x11)
        #expect(mp.ioapics[0].flags == 1 && mp.ioapics[0].address == 0xfec0_0000)

        #expect(mp.ioInterrupts.count == 16)
        for (irq, entry) in mp.ioInterrupts.enumerated() {
            #expect(entry.type == 0 && entry.busIRQ == irq && entry.pin == irq && entry.ioapic == UInt8(vcpus))
        }
        #expect(mp.localInterrupts.count == 2)
        #expect(mp.localInterrupts[0].type == 3 && mp.localInterrupts[0].lint == 0 && mp.localInterrupts[0].lapic == 0xff)
        #expect(mp.localInterrupts[1].type == 1 && mp.localInterrupts[1].lint == 1 && mp.localInterrupts[1].lapic == 0xff)
    }

    @Test func writeRejectsTooManyCPUsBeforeTouchingMemory() throws {
        let memory = try GuestMemory(size: 16 << 20)
        #expect(throws: MPTableError.tooManyCPUs(requested: 100, maximum: 40)) {
            try MPTable.write(to: memory, vcpuCount: 100)
        }
    }
}
