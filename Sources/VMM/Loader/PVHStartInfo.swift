/// struct hvm_start_info (version 1), its memory map and module list, written into the
/// one page at Layout.pvhStartInfoAddress. Layout from Xen's public
/// arch-x86/hvm/start_info.h; all fields little-endian, addresses 64-bit.
enum PVHStartInfo {
    static let magic: UInt32 = 0x336e_c578
    static let version: UInt32 = 1

    // Offsets in struct hvm_start_info (56 bytes in version 1).
    static let magicOffset: UInt64 = 0
    static let versionOffset: UInt64 = 4
    static let flagsOffset: UInt64 = 8
    static let nrModulesOffset: UInt64 = 12
    static let modlistPaddrOffset: UInt64 = 16
    static let cmdlinePaddrOffset: UInt64 = 24
    static let rsdpPaddrOffset: UInt64 = 32
    static let memmapPaddrOffset: UInt64 = 40
    static let memmapEntriesOffset: UInt64 = 48
    static let size: UInt64 = 56

    /// struct hvm_memmap_table_entry: addr u64, size u64, type u32, reserved u32.
    static let memmapEntrySize: UInt64 = 24
    /// struct hvm_modlist_entry: paddr u64, size u64, cmdline_paddr u64, reserved u64.
    static let modlistEntrySize: UInt64 = 32
    static let pageSize: UInt64 = 0x1000

    /// Where the memory map and module list go: right after the struct, then after the map.
    static var memmapAddress: UInt64 { Layout.pvhStartInfoAddress + size }
    static func modlistAddress(memmapEntries: Int) -> UInt64 {
        memmapAddress + UInt64(memmapEntries) * memmapEntrySize
    }
    /// How many memmap entries fit in the page next to the struct and one module.
    static var maxMemmapEntries: Int { Int((pageSize - size - modlistEntrySize) / memmapEntrySize) }

    /// Writes the start info; returns its guest address (what EBX gets at the PVH entry).
    static func write(into memory: GuestMemory, memoryMap: [E820Entry], cmdlineAddress: UInt64,
                      initrd: (address: UInt64, size: UInt64)?) throws(BootLoaderError) -> UInt64 {
        guard memoryMap.count <= maxMemmapEntries else {
            throw .tooManyMemoryMapEntries(count: memoryMap.count, limit: maxMemmapEntries)
        }
        let base = Layout.pvhStartInfoAddress
        let modlist = modlistAddress(memmapEntries: memoryMap.count)
        do {
            try memory.write([UInt8](repeating: 0, count: Int(pageSize)), at: base)
            try memory.writeValue(magic, at: base + magicOffset)
            try memory.writeValue(version, at: base + versionOffset)
            try memory.writeValue(UInt32(0), at: base + flagsOffset)
            try memory.writeValue(cmdlineAddress, at: base + cmdlinePaddrOffset)
            try memory.writeValue(UInt64(0), at: base + rsdpPaddrOffset)  // no ACPI tables
            try memory.writeValue(memmapAddress, at: base + memmapPaddrOffset)
            try memory.writeValue(UInt32(memoryMap.count), at: base + memmapEntriesOffset)
            for (i, entry) in memoryMap.enumerated() {
                let at = memmapAddress + UInt64(i) * memmapEntrySize
                try memory.writeValue(entry.address, at: at)
                try memory.writeValue(entry.size, at: at + 8)
                try memory.writeValue(entry.kind.rawValue, at: at + 16)
                try memory.writeValue(UInt32(0), at: at + 20)
            }
            if let initrd {
                try memory.writeValue(UInt32(1), at: base + nrModulesOffset)
                try memory.writeValue(modlist, at: base + modlistPaddrOffset)
                try memory.writeValue(initrd.address, at: modlist)
                try memory.writeValue(initrd.size, at: modlist + 8)
                // cmdline_paddr 0 (no module command line) and reserved are already zero.
            }
        } catch {
            throw .guestMemory(what: "the PVH start info", error)
        }
        return base
    }
}
