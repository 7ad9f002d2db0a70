/// Guest-physical address map of a volt-vmm x86_64 VM. Every fixed address the
/// VMM hands to a guest is defined here, so the loaders, tables and devices agree.
enum Layout {
    static let KiB: UInt64 = 1 << 10
    static let MiB: UInt64 = 1 << 20
    static let GiB: UInt64 = 1 << 30

    // Low memory (below 1 MiB).
    static let gdtAddress: UInt64 = 0x500
    static let idtAddress: UInt64 = 0x520
    static let pvhStartInfoAddress: UInt64 = 0x6000   // hvm_start_info + memmap + module list
    static let zeroPageAddress: UInt64 = 0x7000       // Linux boot_params
    static let bootStackPointer: UInt64 = 0x8ff0
    static let pml4Address: UInt64 = 0x9000           // identity page tables for 64-bit entry
    static let pdptAddress: UInt64 = 0xa000
    static let pdAddress: UInt64 = 0xb000
    static let cmdlineAddress: UInt64 = 0x20000
    static let cmdlineMaxSize: UInt64 = 0x10000       // 64 KiB, the boot protocol's ceiling is lower
    /// Start of the Extended BIOS Data Area: the MP table lives here (Linux scans it).
    static let ebdaStart: UInt64 = 0x9fc00
    static let lowMemoryEnd: UInt64 = 0xa0000         // 640 KiB
    static let biosRomStart: UInt64 = 0xf0000
    static let highMemoryStart: UInt64 = 0x100000     // 1 MiB

    /// MMIO hole below 4 GiB: no RAM here; virtio-mmio devices, IOAPIC and LAPIC live in it.
    static let mmioHoleStart: UInt64 = 0xc000_0000
    static let mmioHoleEnd: UInt64 = 0x1_0000_0000
    static let ioapicAddress: UInt64 = 0xfec0_0000
    static let lapicAddress: UInt64 = 0xfee0_0000
    /// KVM needs three pages for the real-mode TSS and one for the identity map on Intel.
    static let kvmTSSAddress: UInt64 = 0xfffb_d000
    static let kvmIdentityMapAddress: UInt64 = 0xfffb_c000
    /// First virtio-mmio device window; each device gets `virtioMMIOSize` bytes and its own IRQ.
    static let virtioMMIOBase: UInt64 = 0xd000_0000
    static let virtioMMIOSize: UInt64 = 0x1000
    static let virtioFirstIRQ: UInt32 = 5

    // Legacy I/O ports.
    static let serialPort: UInt16 = 0x3f8
    static let serialIRQ: UInt32 = 4
    static let i8042DataPort: UInt16 = 0x60
    static let i8042CommandPort: UInt16 = 0x64
    static let i8042IRQ: UInt32 = 1                    // the keyboard's ISA IRQ
    /// A guest writes any byte here to mark "booted"; volt-vmm logs the time since its exec.
    static let bootTimerPort: UInt16 = 0x440

    static let minimumMemory: UInt64 = 16 * MiB
}
