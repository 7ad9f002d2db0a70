import VirtioCore

/// Everything that can go wrong placing a kernel, initrd, command line and boot
/// information in guest RAM (identifying the kernel is `KernelImageError`).
/// Each message is one line that names the file or value at fault and the fix.
public enum BootLoaderError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(role: String, path: String, errno: String)
    case cannotRead(role: String, path: String, errno: String)
    case notARegularFile(role: String, path: String)
    case fileTooLarge(role: String, path: String, size: UInt64, limit: UInt64)
    case segmentOutsideRAM(path: String, index: Int, address: UInt64, size: UInt64, ramSize: UInt64)
    case segmentOverlapsBootData(path: String, index: Int, address: UInt64)
    case kernelDoesNotFit(path: String, end: UInt64, ramSize: UInt64)
    case initrdNotRecognized(path: String)
    case initrdDoesNotFit(path: String, size: UInt64, lowest: UInt64, ceiling: UInt64, ramSize: UInt64)
    case cmdlineTooLong(length: Int, limit: Int)
    case cmdlineContainsNUL
    case tooManyMemoryMapEntries(count: Int, limit: Int)
    case guestMemory(what: String, MemoryMapError)

    public var description: String {
        switch self {
        case let .cannotOpen(role, path, errno):
            return "cannot open \(role) \(path): \(errno); check that the path exists and is readable"
        case let .cannotRead(role, path, errno):
            return "cannot read \(role) \(path): \(errno); check the file is readable and not being rewritten"
        case let .notARegularFile(role, path):
            return "\(role) \(path) is not a regular file; pass the path of a \(role) image file"
        case let .fileTooLarge(role, path, size, limit):
            return "\(role) \(path) is \(loaderSize(size)), more than the \(loaderSize(limit)) volt-vmm accepts; check you passed the right file"
        case let .segmentOutsideRAM(path, index, address, size, ramSize):
            return "\(path): segment \(index) (\(loaderHex(address))+\(loaderHex(size))) does not fit in \(loaderSize(ramSize)) of guest RAM below the MMIO hole; give the VM more memory (--memory)"
        case let .segmentOverlapsBootData(path, index, address):
            return "\(path): segment \(index) loads at \(loaderHex(address)), below 1 MiB where volt-vmm keeps the boot structures; use a kernel linked at 1 MiB or above (Linux's default is 16 MiB)"
        case let .kernelDoesNotFit(path, end, ramSize):
            return "\(path) needs guest RAM up to \(loaderHex(end)) (load address + init_size) but the VM has \(loaderSize(ramSize)) below the MMIO hole; give the VM more memory (--memory)"
        case let .initrdNotRecognized(path):
            return "\(path) is not an initrd (expected a cpio archive, optionally gzip/xz/zstd/lz4/bzip2/lzma compressed)"
        case let .initrdDoesNotFit(path, size, lowest, ceiling, ramSize):
            return "initrd \(path) (\(loaderSize(size))) does not fit between the kernel end \(loaderHex(lowest)) and \(loaderHex(ceiling)) in \(loaderSize(ramSize)) of guest RAM; give the VM more memory (--memory) or use a smaller initrd"
        case let .cmdlineTooLong(length, limit):
            return "kernel command line is \(length) bytes, the kernel accepts at most \(limit); shorten --cmdline"
        case .cmdlineContainsNUL:
            return "kernel command line contains a NUL byte; remove it from --cmdline"
        case let .tooManyMemoryMapEntries(count, limit):
            return "the memory map has \(count) entries, the boot information holds at most \(limit); this is a volt-vmm bug, please report it"
        case let .guestMemory(what, error):
            return "cannot write \(what) to guest memory: \(error)"
        }
    }
}
