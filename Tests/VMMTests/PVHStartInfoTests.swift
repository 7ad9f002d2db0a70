import Testing
@testable import VMM

@Suite struct PVHStartInfoTests {
    @Test func offsetsMatchStartInfoH() {
        // xen/include/public/arch-x86/hvm/start_info.h, version 1.
        #expect(PVHStartInfo.magic == 0x336e_c578)
        #expect(PVHStartInfo.magicOffset == 0)
        #expect(PVHStartInfo.versionOffset == 4)
        #expect(PVHStartInfo.flagsOffset == 8)
        #expect(PVHStartInfo.nrModulesOffset == 12)
        #expect(PVHStartInfo.modlistPaddrOffset == 16)
        #expect(PVHStartInfo.cmdlinePaddrOffset == 24)
        #expect(PVHStartInfo.rsdpPaddrOffset == 32)
        #expect(PVHStartInfo.memmapPaddrOffset == 40)
        #expect(PVHStartInfo.memmapEntriesOffset == 48)
        #expect(PVHStartInfo.size == 56)
        #expect(PVHStartInfo.memmapEntrySize == 24)
        #expect(PVHStartInfo.modlistEntrySize == 32)
    }

    @Test func writesStartInfoMemmapAndModule() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let map = E820Entry.map(for: memory.regions)
        let base = try PVHStartInfo.write(into: memory, memoryMap: map, cmdlineAddress: Layout.cmdlineAddress,
                                          initrd: (address: 0x300_0000, size: 0x1234))
        #expect(base == Layout.pvhStartInfoAddress)
        let raw = try memory.read(at: base, count: 0x1000)
        #expect(readLE(UInt32.self, at: 0, in: raw) == 0x336e_c578)
        #expect(readLE(UInt32.self, at: 4, in: raw) == 1)
        #expect(readLE(UInt32.self, at: 8, in: raw) == 0)
        #expect(readLE(UInt32.self, at: 12, in: raw) == 1)
        #expect(readLE(UInt64.self, at: 24, in: raw) == Layout.cmdlineAddress)
        #expect(readLE(UInt64.self, at: 32, in: raw) == 0)
        let memmap = readLE(UInt64.self, at: 40, in: raw)
        let modlist = readLE(UInt64.self, at: 16, in: raw)
        #expect(memmap == base + 56)
        #expect(readLE(UInt32.self, at: 48, in: raw) == UInt32(map.count))
        #expect(modlist == memmap + UInt64(map.count) * 24)
        #expect(modlist + 32 <= base + 0x1000)
        for (i, entry) in map.enumerated() {
            let at = Int(memmap - base) + i * 24
            #expect(readLE(UInt64.self, at: at, in: raw) == entry.address)
            #expect(readLE(UInt64.self, at: at + 8, in: raw) == entry.size)
            #expect(readLE(UInt32.self, at: at + 16, in: raw) == entry.kind.rawValue)
        }
        let mod = Int(modlist - base)
        #expect(readLE(UInt64.self, at: mod, in: raw) == 0x300_0000)
        #expect(readLE(UInt64.self, at: mod + 8, in: raw) == 0x1234)
        #expect(readLE(UInt64.self, at: mod + 16, in: raw) == 0)
    }

    @Test func noInitrdMeansNoModules() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.write([UInt8](repeating: 0xff, count: 0x1000), at: Layout.pvhStartInfoAddress)
        _ = try PVHStartInfo.write(into: memory, memoryMap: E820Entry.map(for: memory.regions),
                                   cmdlineAddress: Layout.cmdlineAddress, initrd: nil)
        #expect(try memory.readValue(UInt32.self, at: Layout.pvhStartInfoAddress + 12) == 0)
        #expect(try memory.readValue(UInt64.self, at: Layout.pvhStartInfoAddress + 16) == 0)
        #expect(try memory.readValue(UInt32.self, at: Layout.pvhStartInfoAddress + 52) == 0)
    }

    @Test func memoryMapThatOverflowsThePageIsAnError() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let many = [E820Entry](repeating: E820Entry(address: 0, size: 0x1000, kind: .ram),
                               count: PVHStartInfo.maxMemmapEntries + 1)
        #expect(throws: BootLoaderError.tooManyMemoryMapEntries(count: many.count, limit: PVHStartInfo.maxMemmapEntries)) {
            try PVHStartInfo.write(into: memory, memoryMap: many, cmdlineAddress: Layout.cmdlineAddress, initrd: nil)
        }
    }
}
