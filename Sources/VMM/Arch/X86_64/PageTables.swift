import VirtioCore

/// Identity page tables for the Linux 64-bit entry, which must start in long mode with
/// paging on and the kernel, zero page and command line identity mapped (Documentation/
/// arch/x86/boot.rst, "64-bit Boot Protocol"). One PML4 entry -> one PDPT entry -> one
/// page directory of 512 2 MiB pages maps [0, 1 GiB); the kernel builds its own tables
/// right after entry, so nothing above that is needed.
enum PageTablesError: Error, Equatable, CustomStringConvertible {
    case memory(MemoryMapError)

    var description: String {
        switch self {
        case let .memory(error): return "cannot write boot page tables: \(error)"
        }
    }
}

enum PageTables {
    // Entry bits (SDM vol. 3A 4.5, tables 4-15 to 4-19).
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let pageSize: UInt64 = 1 << 7    // in a PD entry: maps a 2 MiB page
    static let largePage: UInt64 = 2 << 20
    static let entriesPerTable = 512

    /// The mapped range: [0, mappedSize).
    static let mappedSize = UInt64(entriesPerTable) * largePage   // 1 GiB

    static func pml4Entry() -> UInt64 { Layout.pdptAddress | present | writable }
    static func pdptEntry() -> UInt64 { Layout.pdAddress | present | writable }
    static func pdEntry(_ index: Int) -> UInt64 { UInt64(index) * largePage | present | writable | pageSize }

    /// Writes the three 4 KiB tables (whole pages, so stale data never becomes an entry).
    static func write(to memory: GuestMemory) throws(PageTablesError) {
        var pml4 = [UInt64](repeating: 0, count: entriesPerTable)
        var pdpt = pml4
        pml4[0] = pml4Entry()
        pdpt[0] = pdptEntry()
        let pd = (0..<entriesPerTable).map(pdEntry)
        do {
            try writeTable(pml4, at: Layout.pml4Address, to: memory)
            try writeTable(pdpt, at: Layout.pdptAddress, to: memory)
            try writeTable(pd, at: Layout.pdAddress, to: memory)
        } catch {
            throw .memory(error)
        }
    }

    private static func writeTable(_ entries: [UInt64], at address: UInt64, to memory: GuestMemory) throws(MemoryMapError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 8)
        for entry in entries { bytes.appendLE(entry) }
        try memory.write(bytes, at: address)
    }
}
