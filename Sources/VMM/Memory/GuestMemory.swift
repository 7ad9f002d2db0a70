import CShim
import Glibc
import SystemPackage

public enum GuestMemoryError: Error, CustomStringConvertible, Equatable {
    case outOfRange(address: UInt64, length: UInt64)
    case creationFailed(String)

    public var description: String {
        switch self {
        case let .outOfRange(address, length):
            return "guest memory access of \(length) bytes at 0x\(String(address, radix: 16)) is outside guest RAM"
        case let .creationFailed(why):
            return "cannot create guest memory: \(why)"
        }
    }
}

/// All guest RAM: one memfd (so device workers can map it too), mapped MAP_SHARED
/// once, laid out around the MMIO hole below 4 GiB. Every access is bounds-checked;
/// no raw pointer leaves this type except to KVM and for bulk I/O by trusted VMM code.
final class GuestMemory: @unchecked Sendable {
    struct Region: Equatable {
        let guestBase: UInt64
        let size: UInt64
        /// Offset of this region inside the memfd (and the host mapping).
        let fileOffset: UInt64
        var guestEnd: UInt64 { guestBase + size }
    }

    let size: UInt64
    let regions: [Region]
    let fd: FileDescriptor
    private let base: UnsafeMutableRawPointer

    /// Splits `size` bytes of RAM around the MMIO hole: [0, hole) and [4 GiB, ...).
    static func layout(size: UInt64) -> [Region] {
        let low = min(size, Layout.mmioHoleStart)
        var regions = [Region(guestBase: 0, size: low, fileOffset: 0)]
        if size > low {
            regions.append(Region(guestBase: Layout.mmioHoleEnd, size: size - low, fileOffset: low))
        }
        return regions
    }

    init(size: UInt64) throws {
        guard size >= Layout.minimumMemory, size % 4096 == 0 else {
            throw GuestMemoryError.creationFailed("size \(size) must be a multiple of 4 KiB and at least \(Layout.minimumMemory >> 20) MiB")
        }
        let memfd = volt_memfd_create("volt-guest-ram", VOLT_MFD_CLOEXEC | VOLT_MFD_ALLOW_SEALING)
        guard memfd >= 0 else { throw GuestMemoryError.creationFailed("memfd_create: \(Errno(rawValue: -memfd))") }
        let fd = FileDescriptor(rawValue: memfd)
        guard ftruncate(memfd, off_t(size)) == 0 else {
            let err = Errno(rawValue: errno)
            try? fd.close()
            throw GuestMemoryError.creationFailed("ftruncate(\(size)): \(err)")
        }
        let ptr = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd, 0)
        guard let ptr, ptr != MAP_FAILED else {
            let err = Errno(rawValue: errno)
            try? fd.close()
            throw GuestMemoryError.creationFailed("mmap(\(size)): \(err)")
        }
        // Not inherited by fork: the launcher (forked after this) never maps guest RAM.
        _ = madvise(ptr, Int(size), MADV_DONTFORK)
        self.size = size
        self.fd = fd
        self.base = ptr
        self.regions = GuestMemory.layout(size: size)
    }

    deinit {
        munmap(base, Int(size))
        try? fd.close()
    }

    /// Host address of the start of a region, for KVM_SET_USER_MEMORY_REGION.
    func hostAddress(of region: Region) -> UInt64 {
        UInt64(UInt(bitPattern: base + Int(region.fileOffset)))
    }

    /// A host pointer to `length` bytes at guest-physical `address`, or an error if any
    /// byte falls outside one RAM region (accesses never straddle the hole).
    func pointer(at address: UInt64, length: UInt64) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        for region in regions where address >= region.guestBase && address < region.guestEnd {
            let (end, overflow) = address.addingReportingOverflow(length)
            guard !overflow, end <= region.guestEnd else { break }
            return base + Int(region.fileOffset + (address - region.guestBase))
        }
        throw GuestMemoryError.outOfRange(address: address, length: length)
    }

    func contains(_ address: UInt64, length: UInt64) -> Bool {
        (try? pointer(at: address, length: length)) != nil
    }

    func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(GuestMemoryError) {
        let dst = try pointer(at: address, length: UInt64(bytes.count))
        let buffer = UnsafeMutableRawBufferPointer(start: dst, count: bytes.count)
        buffer.copyBytes(from: bytes)
    }

    func read(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        let src = try pointer(at: address, length: UInt64(count))
        return Array(UnsafeRawBufferPointer(start: src, count: count))
    }

    /// Writes a trivially-copyable value (little-endian host layout, as the guest expects on x86).
    func writeValue<T: BitwiseCopyable>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        let dst = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        dst.storeBytes(of: value, as: T.self)
    }

    func readValue<T: BitwiseCopyable>(_: T.Type, at address: UInt64) throws(GuestMemoryError) -> T {
        let src = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        return src.loadUnaligned(as: T.self)
    }
}
