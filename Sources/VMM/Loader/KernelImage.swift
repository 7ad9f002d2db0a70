/// What a kernel file is, decided from its bytes alone: an ELF vmlinux with a PVH entry
/// note (booted in 32-bit protected mode through XEN_ELFNOTE_PHYS32_ENTRY) or a bzImage
/// that offers the 64-bit boot protocol. Everything read from the file is bounds-checked;
/// a malformed file is a `KernelImageError`, never a trap.
public struct KernelImage {
    enum Kind: Equatable {
        case elfPVH(entry: UInt64)
        case bzImage(version: UInt16)
    }

    enum Format: Equatable {
        case elfPVH(ELFKernel)
        case bzImage(SetupHeader)
    }

    let path: String
    let bytes: [UInt8]
    let format: Format

    var kind: Kind {
        switch format {
        case let .elfPVH(elf): return .elfPVH(entry: elf.pvhEntry)
        case let .bzImage(header): return .bzImage(version: header.version)
        }
    }

    /// Identifies and validates `bytes`; `path` only names the file in errors.
    init(bytes: [UInt8], path: String) throws(KernelImageError) {
        self.path = path
        self.bytes = bytes
        let data = UntrustedBytes(bytes)
        if data.hasPrefix(ELF.magic) {
            format = .elfPVH(try ELFKernel(data, path: path))
        } else if data.u16(BootParams.bootFlag) == BootParams.bootFlagMagic,
                  data.u32(BootParams.header) == BootParams.headerMagic {
            format = .bzImage(try SetupHeader(data, path: path))
        } else {
            throw .notAKernel(path: path)
        }
    }

    /// Reads and identifies the kernel file at `path` (`BootLoaderError` if it cannot be read).
    public init(contentsOf path: String) throws {
        try self.init(bytes: try HostFile.contents(of: path, role: "kernel"), path: path)
    }
}

public enum KernelImageError: Error, Equatable, CustomStringConvertible {
    case notAKernel(path: String)
    case elfTruncatedHeader(path: String, size: UInt64)
    case elfBadClass(path: String, elfClass: UInt8)
    case elfBigEndian(path: String)
    case elfWrongMachine(path: String, machine: UInt16)
    case elfBadProgramHeaderSize(path: String, size: UInt16)
    case elfProgramHeadersOutsideFile(path: String, offset: UInt64, count: UInt16)
    case elfSegmentOutsideFile(path: String, index: Int)
    case elfSegmentAddressOverflow(path: String, index: Int)
    case elfSegmentFileSizeExceedsMemorySize(path: String, index: Int, fileSize: UInt64, memorySize: UInt64)
    case elfNoteTruncated(path: String, index: Int)
    case elfBadPVHNote(path: String, why: String)
    case elfNoLoadableSegments(path: String)
    case elfNoPVHNote(path: String)
    case bzImageTruncatedHeader(path: String, size: UInt64)
    case bzImageProtocolTooOld(path: String, version: UInt16)
    case bzImageNotLoadedHigh(path: String)
    case bzImageNo64BitEntry(path: String)
    case bzImageNoProtectedModeKernel(path: String, offset: UInt64)

    public var description: String {
        switch self {
        case let .notAKernel(path):
            return "\(path) is not a Linux kernel (neither an ELF vmlinux nor a bzImage)"
        case let .elfTruncatedHeader(path, size):
            return "\(path) is truncated: \(size) bytes is too short for an ELF header; copy the vmlinux again"
        case let .elfBadClass(path, elfClass):
            return "\(path) has an invalid ELF class \(elfClass) (expected 1 or 2); the file is corrupt, rebuild or copy it again"
        case let .elfBigEndian(path):
            return "\(path) is a big-endian ELF; volt-vmm boots x86 kernels, build the kernel for x86_64"
        case let .elfWrongMachine(path, machine):
            return "\(path) is an ELF for machine \(machine), not x86/x86_64; build the kernel with ARCH=x86_64"
        case let .elfBadProgramHeaderSize(path, size):
            return "\(path) has program header entries of \(size) bytes, which does not match its ELF class; the file is corrupt, rebuild it"
        case let .elfProgramHeadersOutsideFile(path, offset, count):
            return "\(path) has \(count) program headers at offset \(loaderHex(offset)) that lie past the end of the file; the file is truncated or corrupt, copy the vmlinux again"
        case let .elfSegmentOutsideFile(path, index):
            return "\(path): program header \(index) points past the end of the file; the file is truncated or corrupt, copy the vmlinux again"
        case let .elfSegmentAddressOverflow(path, index):
            return "\(path): segment \(index) address plus size overflows 64 bits; the file is corrupt, rebuild it"
        case let .elfSegmentFileSizeExceedsMemorySize(path, index, fileSize, memorySize):
            return "\(path): segment \(index) has p_filesz \(loaderHex(fileSize)) larger than p_memsz \(loaderHex(memorySize)); the file is corrupt, rebuild it"
        case let .elfNoteTruncated(path, index):
            return "\(path): a note in program header \(index) runs past the end of its segment; the file is corrupt, rebuild it"
        case let .elfBadPVHNote(path, why):
            return "\(path) has an unusable PVH entry note (\(why)); rebuild the kernel with CONFIG_PVH=y"
        case let .elfNoLoadableSegments(path):
            return "\(path) has no loadable (PT_LOAD) segments; pass the vmlinux from the top of the kernel build tree"
        case let .elfNoPVHNote(path):
            return "\(path): vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build the kernel with CONFIG_PVH=y"
        case let .bzImageTruncatedHeader(path, size):
            return "\(path) is truncated: \(size) bytes do not hold the whole bzImage setup header; copy arch/x86/boot/bzImage again"
        case let .bzImageProtocolTooOld(path, version):
            return "\(path) uses boot protocol \(SetupHeader.versionString(version)); volt-vmm needs 2.12 or newer (Linux 3.8+) for the 64-bit entry; use a newer kernel"
        case let .bzImageNotLoadedHigh(path):
            return "\(path) is a zImage (LOADED_HIGH is clear), which must run below 1 MiB; build a bzImage"
        case let .bzImageNo64BitEntry(path):
            return "\(path) has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64); build a 64-bit (x86_64) kernel"
        case let .bzImageNoProtectedModeKernel(path, offset):
            return "\(path) ends before its protected-mode kernel at offset \(loaderHex(offset)); the bzImage is truncated, copy it again"
        }
    }
}

/// ELF constants used here (System V gABI and the x86 psABI).
enum ELF {
    static let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]   // "\x7fELF"
    static let class32: UInt8 = 1
    static let class64: UInt8 = 2
    static let littleEndian: UInt8 = 1
    static let machine386: UInt16 = 3
    static let machineX86_64: UInt16 = 62
    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    /// include/xen/interface/elfnote.h: the 32-bit physical PVH entry point.
    static let xenElfnotePhys32Entry: UInt32 = 18
    static let xenNoteName: [UInt8] = [0x58, 0x65, 0x6e]        // "Xen"
}

/// One PT_LOAD segment, already checked to lie inside the file with filesz <= memsz.
struct ELFSegment: Equatable {
    let fileOffset: UInt64
    let physicalAddress: UInt64
    let fileSize: UInt64
    let memorySize: UInt64
}

/// A validated ELF vmlinux with a PVH entry.
struct ELFKernel: Equatable {
    let is64Bit: Bool
    let pvhEntry: UInt64
    let segments: [ELFSegment]

    var loadedBytes: UInt64 { segments.reduce(0) { $0 + $1.memorySize } }

    init(_ data: UntrustedBytes, path: String) throws(KernelImageError) {
        guard let elfClass = data.u8(4) else { throw .elfTruncatedHeader(path: path, size: data.count) }
        guard elfClass == ELF.class32 || elfClass == ELF.class64 else {
            throw .elfBadClass(path: path, elfClass: elfClass)
        }
        let is64 = elfClass == ELF.class64
        guard data.contains(offset: 0, length: is64 ? 64 : 52) else {
            throw .elfTruncatedHeader(path: path, size: data.count)
        }
        guard data.u8(5) == ELF.littleEndian else { throw .elfBigEndian(path: path) }
        // The header is known to be complete from here, so these reads cannot fail.
        let machine = data.u16(18) ?? 0
        guard machine == (is64 ? ELF.machineX86_64 : ELF.machine386) else {
            throw .elfWrongMachine(path: path, machine: machine)
        }
        let phoff = (is64 ? data.u64(32) : data.u32(28).map(UInt64.init)) ?? 0
        let phentsize = data.u16(is64 ? 54 : 42) ?? 0
        let phnum = data.u16(is64 ? 56 : 44) ?? 0
        guard phentsize == (is64 ? 56 : 32) else {
            throw .elfBadProgramHeaderSize(path: path, size: phentsize)
        }
        guard data.contains(offset: phoff, length: UInt64(phnum) * UInt64(phentsize)) else {
            throw .elfProgramHeadersOutsideFile(path: path, offset: phoff, count: phnum)
        }

        var segments: [ELFSegment] = []
        var entry: UInt64?
        for index in 0..<Int(phnum) {
            let ph = phoff + UInt64(index) * UInt64(phentsize)
            // Field offsets of Elf64_Phdr / Elf32_Phdr; the table is in bounds (checked above).
            let type = data.u32(ph) ?? 0
            let offset, paddr, filesz, memsz, align: UInt64
            if is64 {
                offset = data.u64(ph + 8) ?? 0
                paddr = data.u64(ph + 24) ?? 0
                filesz = data.u64(ph + 32) ?? 0
                memsz = data.u64(ph + 40) ?? 0
                align = data.u64(ph + 48) ?? 0
            } else {
                offset = UInt64(data.u32(ph + 4) ?? 0)
                paddr = UInt64(data.u32(ph + 12) ?? 0)
                filesz = UInt64(data.u32(ph + 16) ?? 0)
                memsz = UInt64(data.u32(ph + 20) ?? 0)
                align = UInt64(data.u32(ph + 28) ?? 0)
            }
            switch type {
            case ELF.ptLoad:
                guard filesz <= memsz else {
                    throw .elfSegmentFileSizeExceedsMemorySize(path: path, index: index, fileSize: filesz, memorySize: memsz)
                }
                guard data.contains(offset: offset, length: filesz) else {
                    throw .elfSegmentOutsideFile(path: path, index: index)
                }
                guard !paddr.addingReportingOverflow(memsz).overflow else {
                    throw .elfSegmentAddressOverflow(path: path, index: index)
                }
                segments.append(ELFSegment(fileOffset: offset, physicalAddress: paddr, fileSize: filesz, memorySize: memsz))
            case ELF.ptNote:
                guard data.contains(offset: offset, length: filesz) else {
                    throw .elfSegmentOutsideFile(path: path, index: index)
                }
                let found = try Self.pvhEntry(in: data, offset: offset, size: filesz, alignment: align == 8 ? 8 : 4,
                                              index: index, path: path)
                if entry == nil { entry = found }
            default:
                continue
            }
        }
        guard !segments.isEmpty else { throw .elfNoLoadableSegments(path: path) }
        guard let entry else { throw .elfNoPVHNote(path: path) }
        self.is64Bit = is64
        self.pvhEntry = entry
        self.segments = segments
    }

    /// Walks the notes of one PT_NOTE segment (already inside the file) and returns the
    /// XEN_ELFNOTE_PHYS32_ENTRY value if present. Each note: namesz, descsz, type (u32
    /// each), then name and desc, each padded to the segment's note alignment.
    private static func pvhEntry(in data: UntrustedBytes, offset: UInt64, size: UInt64, alignment: UInt64,
                                 index: Int, path: String) throws(KernelImageError) -> UInt64? {
        func padded(_ n: UInt64) -> UInt64 { (n + alignment - 1) & ~(alignment - 1) }
        let end = offset + size
        var position = offset
        while end - position >= 12 {
            // u32 fields widened to UInt64: the sums below cannot overflow.
            let namesz = UInt64(data.u32(position) ?? 0)
            let descsz = UInt64(data.u32(position + 4) ?? 0)
            let type = data.u32(position + 8) ?? 0
            let name = position + 12
            let desc = name + padded(namesz)
            guard desc + descsz <= end else { throw .elfNoteTruncated(path: path, index: index) }
            var nameBytes = Array(data.slice(offset: name, length: namesz) ?? [])
            if nameBytes.last == 0 { nameBytes.removeLast() }
            if nameBytes == ELF.xenNoteName && type == ELF.xenElfnotePhys32Entry {
                // Linux emits the entry as a pointer-sized value: 4 bytes (i386) or 8 (x86_64).
                let value: UInt64?
                switch descsz {
                case 4: value = data.u32(desc).map(UInt64.init)
                case 8: value = data.u64(desc)
                default: throw .elfBadPVHNote(path: path, why: "descriptor of \(descsz) bytes, expected 4 or 8")
                }
                guard let value, value != 0, value <= UInt64(UInt32.max) else {
                    throw .elfBadPVHNote(path: path, why: "entry \(loaderHex(value ?? 0)) is not a 32-bit physical address")
                }
                return value
            }
            position = min(end, desc + padded(descsz))
        }
        return nil
    }
}

/// The fields of a bzImage setup header the loader needs, validated for the 64-bit boot
/// protocol (protocol 2.12+, LOADED_HIGH, XLF_KERNEL_64).
struct SetupHeader: Equatable {
    let version: UInt16
    /// setup_sects with 0 already replaced by 4.
    let setupSectors: UInt64
    let loadflags: UInt8
    let xloadflags: UInt16
    let initrdAddrMax: UInt32
    let kernelAlignment: UInt32
    let relocatable: Bool
    let cmdlineSize: UInt32
    let prefAddress: UInt64
    let initSize: UInt32
    /// End of the setup header in the file (0x202 + byte at 0x201), capped at 0x290.
    let headerEnd: UInt64
    /// File offset of the protected-mode kernel: (setup_sects + 1) * 512.
    var kernelOffset: UInt64 { (setupSectors + 1) * 512 }

    static let minimumVersion: UInt16 = 0x020c

    static func versionString(_ version: UInt16) -> String {
        let minor = version & 0xff
        return "\(version >> 8)." + (minor < 10 ? "0\(minor)" : "\(minor)")
    }

    init(_ data: UntrustedBytes, path: String) throws(KernelImageError) {
        guard let version = data.u16(BootParams.version), let jumpOffset = data.u8(BootParams.jump + 1) else {
            throw .bzImageTruncatedHeader(path: path, size: data.count)
        }
        guard version >= Self.minimumVersion else { throw .bzImageProtocolTooOld(path: path, version: version) }
        let declaredEnd = BootParams.header + UInt64(jumpOffset)
        guard declaredEnd >= BootParams.minimumHeaderEnd64, data.count >= declaredEnd else {
            throw .bzImageTruncatedHeader(path: path, size: data.count)
        }
        // The whole header through handover_offset is present, so these reads cannot fail.
        let loadflags = data.u8(BootParams.loadflags) ?? 0
        let xloadflags = data.u16(BootParams.xloadflags) ?? 0
        guard loadflags & BootParams.loadedHigh != 0 else { throw .bzImageNotLoadedHigh(path: path) }
        guard xloadflags & BootParams.xlfKernel64 != 0 else { throw .bzImageNo64BitEntry(path: path) }
        let sects = data.u8(BootParams.setupSects) ?? 0
        self.version = version
        self.setupSectors = sects == 0 ? 4 : UInt64(sects)
        self.loadflags = loadflags
        self.xloadflags = xloadflags
        self.initrdAddrMax = data.u32(BootParams.initrdAddrMax) ?? 0
        self.kernelAlignment = data.u32(BootParams.kernelAlignment) ?? 0
        self.relocatable = (data.u8(BootParams.relocatableKernel) ?? 0) != 0
        self.cmdlineSize = data.u32(BootParams.cmdlineSize) ?? 0
        self.prefAddress = data.u64(BootParams.prefAddress) ?? 0
        self.initSize = data.u32(BootParams.initSize) ?? 0
        self.headerEnd = min(declaredEnd, BootParams.setupHeaderLimit)
        guard kernelOffset < data.count else {
            throw .bzImageNoProtectedModeKernel(path: path, offset: kernelOffset)
        }
    }
}
