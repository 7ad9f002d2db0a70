/// One entry of the BIOS e820 memory map, as both the Linux zero page
/// (struct boot_e820_entry) and PVH (struct hvm_memmap_table_entry) describe it.
struct E820Entry: Equatable, CustomStringConvertible {
    enum Kind: UInt32 { case ram = 1, reserved = 2 }
    let address: UInt64
    let size: UInt64
    let kind: Kind

    var description: String {
        "0x\(String(address, radix: 16))+0x\(String(size, radix: 16)) \(kind)"
    }

    /// The map volt-vmm reports: low RAM up to the EBDA, the EBDA and BIOS area reserved,
    /// RAM from 1 MiB, the MMIO hole left out, and RAM above 4 GiB when there is more.
    static func map(for memory: [GuestMemory.Region]) -> [E820Entry] {
        var entries = [
            E820Entry(address: 0, size: Layout.ebdaStart, kind: .ram),
            E820Entry(address: Layout.ebdaStart, size: Layout.lowMemoryEnd - Layout.ebdaStart, kind: .reserved),
            E820Entry(address: Layout.biosRomStart, size: Layout.highMemoryStart - Layout.biosRomStart, kind: .reserved),
        ]
        for region in memory {
            let start = max(region.guestBase, Layout.highMemoryStart)
            if region.guestEnd > start {
                entries.append(E820Entry(address: start, size: region.guestEnd - start, kind: .ram))
            }
        }
        return entries
    }
}
