/// Byte offsets inside struct boot_params (the Linux "zero page") and, because the
/// setup header sits at the same offset in the first sectors of a bzImage, inside the
/// bzImage file too. Source: arch/x86/include/uapi/asm/bootparam.h and
/// Documentation/arch/x86/boot.rst (the offsets are ABI and never move).
enum BootParams {
    static let size: UInt64 = 0x1000

    // struct boot_params fields outside the setup header.
    static let extRamdiskImage: UInt64 = 0x0c0   // u32, high half of ramdisk_image
    static let extRamdiskSize: UInt64 = 0x0c4    // u32
    static let extCmdLinePtr: UInt64 = 0x0c8     // u32
    static let e820Entries: UInt64 = 0x1e8       // u8
    static let e820Table: UInt64 = 0x2d0         // struct boot_e820_entry[128], 20 bytes each
    static let e820MaxEntries = 128
    static let e820EntrySize: UInt64 = 20

    // struct setup_header, starting at 0x1f1.
    static let setupHeader: UInt64 = 0x1f1
    static let setupSects: UInt64 = 0x1f1        // u8, 0 means 4
    static let vidMode: UInt64 = 0x1fa           // u16
    static let bootFlag: UInt64 = 0x1fe          // u16, 0xaa55
    static let jump: UInt64 = 0x200              // u16; byte 0x201 + 0x202 = end of the header
    static let header: UInt64 = 0x202            // u32, "HdrS"
    static let version: UInt64 = 0x206           // u16, protocol major << 8 | minor
    static let typeOfLoader: UInt64 = 0x210      // u8
    static let loadflags: UInt64 = 0x211         // u8
    static let code32Start: UInt64 = 0x214       // u32
    static let ramdiskImage: UInt64 = 0x218      // u32
    static let ramdiskSize: UInt64 = 0x21c       // u32
    static let heapEndPtr: UInt64 = 0x224        // u16
    static let cmdLinePtr: UInt64 = 0x228        // u32
    static let initrdAddrMax: UInt64 = 0x22c     // u32 (protocol 2.03+)
    static let kernelAlignment: UInt64 = 0x230   // u32 (2.05+)
    static let relocatableKernel: UInt64 = 0x234 // u8 (2.05+)
    static let xloadflags: UInt64 = 0x236        // u16 (2.12+)
    static let cmdlineSize: UInt64 = 0x238       // u32 (2.06+)
    static let prefAddress: UInt64 = 0x258       // u64 (2.10+)
    static let initSize: UInt64 = 0x260          // u32 (2.10+)
    /// First byte after handover_offset: every 2.12+ header reaches at least here.
    static let minimumHeaderEnd64: UInt64 = 0x268
    /// The setup header must not spill into edd_mbr_sig_buffer at 0x290.
    static let setupHeaderLimit: UInt64 = 0x290

    static let bootFlagMagic: UInt16 = 0xaa55
    static let headerMagic: UInt32 = 0x5372_6448 // "HdrS" read little-endian

    // loadflags bits.
    static let loadedHigh: UInt8 = 1 << 0
    static let canUseHeap: UInt8 = 1 << 7
    // xloadflags bits.
    static let xlfKernel64: UInt16 = 1 << 0

    /// type_of_loader 0xff: "undefined" boot loader, the value for loaders without an ID.
    static let undefinedLoader: UInt8 = 0xff
    /// vid_mode 0xffff: "normal", no video mode change.
    static let normalVideoMode: UInt16 = 0xffff
}
