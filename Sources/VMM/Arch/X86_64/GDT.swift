import CShim
import VirtioCore

/// The boot GDT and the segment registers that match it. KVM loads segment registers
/// from `kvm_segment` (the hidden descriptor cache), not from memory, but the GDT must
/// still hold the same descriptors: a guest that reloads a selector before installing its
/// own GDT (Linux does not, but others may) must get the same segment.
enum GDTError: Error, Equatable, CustomStringConvertible {
    case memory(MemoryMapError)

    var description: String {
        switch self {
        case let .memory(error): return "cannot write GDT: \(error)"
        }
    }
}

enum GDT {
    /// Which boot path the table serves; only the code descriptor differs.
    enum Mode: Equatable {
        case protected32   // PVH entry
        case long64        // Linux 64-bit boot protocol entry
    }

    // Selectors (index << 3, TI = 0, RPL = 0). The same slots in both modes: Layout leaves
    // room for four descriptors below the IDT at 0x520. Linux's 64-bit boot protocol text
    // names __BOOT_CS = 0x10 / __BOOT_DS = 0x18, but its startup_64 loads its own GDT and
    // reloads every segment register before using one, so any flat selectors work.
    static let codeSelector: UInt16 = 0x08
    static let dataSelector: UInt16 = 0x10
    static let tssSelector: UInt16 = 0x18
    static let entryCount = 4

    // Access bytes (SDM vol. 3A 3.4.5): P | DPL 0 | S | type.
    static let codeAccess: UInt8 = 0x9b   // code, execute/read, accessed
    static let dataAccess: UInt8 = 0x93   // data, read/write, accessed
    static let tssAccess: UInt8 = 0x8b    // system (S = 0), busy 32-bit TSS (type 11)
    // Flags nibble: G (bit 3), D/B (bit 2), L (bit 1), AVL (bit 0).
    static let flat32Flags: UInt8 = 0b1100
    static let code64Flags: UInt8 = 0b1010  // L = 1 requires D = 0

    /// Encodes one 8-byte segment descriptor (SDM vol. 3A figure 3-8). `limit` is 20 bits.
    static func descriptor(base: UInt32, limit: UInt32, access: UInt8, flags: UInt8) -> UInt64 {
        let base = UInt64(base), limit = UInt64(limit & 0xfffff)
        return (limit & 0xffff)
            | (base & 0xff_ffff) << 16
            | UInt64(access) << 40
            | (limit >> 16) << 48
            | UInt64(flags & 0xf) << 52
            | (base >> 24) << 56
    }

    /// The descriptors for `mode`: null, code, data, TSS.
    static func table(for mode: Mode) -> [UInt64] {
        let codeFlags = mode == .long64 ? code64Flags : flat32Flags
        return [
            0,
            descriptor(base: 0, limit: 0xfffff, access: codeAccess, flags: codeFlags),
            descriptor(base: 0, limit: 0xfffff, access: dataAccess, flags: flat32Flags),
            // TR must hold a busy TSS for VM entry (SDM vol. 3C 26.3.1.2; in IA-32e mode
            // type 11 means 64-bit busy TSS). The guest never switches tasks through it
            // before it loads its own, so a minimal 104-byte TSS at 0 is enough.
            descriptor(base: 0, limit: 0x67, access: tssAccess, flags: 0),
        ]
    }

    /// The segment register KVM should load for `selector`, decoded from `descriptor`.
    static func segment(_ descriptor: UInt64, selector: UInt16) -> kvm_segment {
        let access = UInt8(truncatingIfNeeded: descriptor >> 40)
        let flags = UInt8(truncatingIfNeeded: descriptor >> 52) & 0xf
        let rawLimit = UInt32(truncatingIfNeeded: descriptor & 0xffff) | UInt32(truncatingIfNeeded: (descriptor >> 48) & 0xf) << 16
        let granular = flags & 0b1000 != 0
        var segment = kvm_segment()
        segment.base = (descriptor >> 16) & 0xff_ffff | ((descriptor >> 56) & 0xff) << 24
        segment.limit = granular ? rawLimit << 12 | 0xfff : rawLimit  // KVM takes the byte limit
        segment.selector = selector
        segment.type = access & 0xf
        segment.present = access >> 7
        segment.dpl = (access >> 5) & 0b11
        segment.s = (access >> 4) & 1
        segment.db = (flags >> 2) & 1
        segment.l = (flags >> 1) & 1
        segment.g = flags >> 3
        segment.avl = flags & 1
        segment.unusable = 0
        return segment
    }

    /// Code, data and task segment registers for `mode`.
    static func segments(for mode: Mode) -> (code: kvm_segment, data: kvm_segment, tss: kvm_segment) {
        let table = table(for: mode)
        return (segment(table[1], selector: codeSelector),
                segment(table[2], selector: dataSelector),
                segment(table[3], selector: tssSelector))
    }

    /// Writes the table at Layout.gdtAddress; returns the GDTR limit.
    @discardableResult
    static func write(_ mode: Mode, to memory: GuestMemory) throws(GDTError) -> UInt16 {
        let table = table(for: mode)
        assert(Layout.gdtAddress + UInt64(table.count * 8) <= Layout.idtAddress)
        do {
            for (index, entry) in table.enumerated() {
                try memory.writeValue(entry, at: Layout.gdtAddress + UInt64(index * 8))
            }
        } catch {
            throw .memory(error)
        }
        return UInt16(table.count * 8 - 1)
    }
}
