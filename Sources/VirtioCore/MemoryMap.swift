import CShim
import Glibc
import SystemPackage

/// One region of guest RAM as the frontend describes it in VHOST_USER_SET_MEM_TABLE
/// (qemu docs/interop/vhost-user.rst, "Memory regions description": guest address,
/// size, user address, mmap offset; the fd travels as SCM_RIGHTS ancillary data).
public struct MemoryRegionDescriptor: Equatable, Sendable {
    public var guestAddress: GuestAddress
    public var size: UInt64
    /// The frontend's virtual address of the region (ring addresses are given in these).
    public var userAddress: UInt64
    /// Where the region starts in `fd`; any value, not necessarily page aligned.
    public var mmapOffset: UInt64
    public var fd: FileDescriptor

    public init(guestAddress: GuestAddress, size: UInt64, userAddress: UInt64, mmapOffset: UInt64, fd: FileDescriptor) {
        self.guestAddress = guestAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
        self.fd = fd
    }
}

/// A region of a frontend-owned `GuestMemoryFile`: guest range and where it sits in the file.
public struct FrontendRegion: Equatable, Sendable {
    public var guestAddress: GuestAddress
    public var size: UInt64
    public var fileOffset: UInt64

    public init(guestAddress: GuestAddress, size: UInt64, fileOffset: UInt64) {
        self.guestAddress = guestAddress
        self.size = size
        self.fileOffset = fileOffset
    }
}

/// A process's view of guest memory: every guest-physical or frontend-virtual range
/// is translated here, bounds-checked, and must lie wholly inside one region.
///
/// The map is immutable once built; a new memory table means a new map (and new
/// queues built on it). Pointers it hands out stay valid for as long as the map lives.
/// The bytes behind them are shared with a guest that may change them at any moment:
/// read each field once, validate the copy, and never re-read it.
public final class MemoryMap: @unchecked Sendable {
    // @unchecked: all stored properties are immutable after init. The memory they point
    // to is concurrently written by the guest by design; callers treat it as hostile.

    /// vhost-user's VHOST_MEMORY_BASELINE_NREGIONS.
    public static let defaultMaxRegions = 8

    struct Region {
        let guestStart: UInt64
        let size: UInt64
        let userStart: UInt64
        let host: UnsafeMutableRawPointer
    }

    /// Regions as given (for the frontend: what to send in SET_MEM_TABLE).
    public let descriptors: [MemoryRegionDescriptor]
    let regions: [Region]
    /// Mappings this map created and must unmap (none when a frontend file owns them).
    private let mappings: [(UnsafeMutableRawPointer, Int)]
    /// Keeps a frontend's GuestMemoryFile alive while the map refers into it.
    private let owner: GuestMemoryFile?

    /// Backend side: validates the table, then maps every fd MAP_SHARED at its offset.
    /// The fds are not taken over; the caller may close them once this returns.
    public init(regions descriptors: [MemoryRegionDescriptor], maxRegions: Int = MemoryMap.defaultMaxRegions) throws(MemoryMapError) {
        var fileSizes: [UInt64] = []
        for (i, d) in descriptors.enumerated() {
            var st = stat()
            guard fstat(d.fd.rawValue, &st) == 0 else { throw .fstatFailed(region: i, Errno(rawValue: errno)) }
            fileSizes.append(UInt64(max(st.st_size, 0)))
        }
        try Self.validate(descriptors, fileSizes: fileSizes, maxRegions: maxRegions)

        // The spec allows any mmap offset; mmap needs a page-aligned one, so map from
        // the page below and remember the delta.
        let page = UInt64(getpagesize())
        var mapped: [(UnsafeMutableRawPointer, Int)] = []
        var regions: [Region] = []
        for (i, d) in descriptors.enumerated() {
            let alignedOffset = d.mmapOffset & ~(page - 1)
            let delta = d.mmapOffset - alignedOffset
            // delta + size <= mmapOffset + size <= file size <= Int.max, checked above.
            let length = Int(delta + d.size)
            let ptr = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, d.fd.rawValue, off_t(alignedOffset))
            guard let ptr, ptr != MAP_FAILED else {
                let err = Errno(rawValue: errno)
                for (p, l) in mapped { munmap(p, l) }
                throw .mmapFailed(region: i, err)
            }
            mapped.append((ptr, length))
            regions.append(Region(guestStart: d.guestAddress.rawValue, size: d.size, userStart: d.userAddress, host: ptr + Int(delta)))
        }
        self.descriptors = descriptors
        self.regions = regions
        self.mappings = mapped
        self.owner = nil
    }

    /// Frontend side (VMM or test frontend): a view of memory it already owns and has
    /// mapped. User addresses are the real addresses of the mapping, so `descriptors`
    /// is exactly what a backend needs to map the same memory.
    public init(frontend file: GuestMemoryFile, regions layout: [FrontendRegion], maxRegions: Int = MemoryMap.defaultMaxRegions) throws(MemoryMapError) {
        let descriptors = layout.map {
            MemoryRegionDescriptor(guestAddress: $0.guestAddress, size: $0.size,
                                   userAddress: file.userAddress(atOffset: $0.fileOffset),
                                   mmapOffset: $0.fileOffset, fd: file.fd)
        }
        try Self.validate(descriptors, fileSizes: Array(repeating: file.size, count: descriptors.count), maxRegions: maxRegions)
        self.descriptors = descriptors
        self.regions = layout.map {
            Region(guestStart: $0.guestAddress.rawValue, size: $0.size,
                   userStart: file.userAddress(atOffset: $0.fileOffset), host: file.base + Int($0.fileOffset))
        }
        self.mappings = []
        self.owner = file
    }

    deinit {
        for (p, l) in mappings { munmap(p, l) }
    }

    /// Checks a memory table before anything is mapped.
    static func validate(_ table: [MemoryRegionDescriptor], fileSizes: [UInt64], maxRegions: Int) throws(MemoryMapError) {
        guard !table.isEmpty else { throw .noRegions }
        guard table.count <= maxRegions else { throw .tooManyRegions(count: table.count, limit: maxRegions) }
        for (i, r) in table.enumerated() {
            guard r.size > 0 else { throw .zeroSize(region: i) }
            guard r.guestAddress.checkedAdd(r.size) != nil else { throw .guestRangeWraps(region: i) }
            guard !r.userAddress.addingReportingOverflow(r.size).overflow else { throw .userRangeWraps(region: i) }
            let (fileEnd, wraps) = r.mmapOffset.addingReportingOverflow(r.size)
            guard !wraps else { throw .fileRangeWraps(region: i) }
            guard fileEnd <= fileSizes[i] else { throw .exceedsFile(region: i, end: fileEnd, fileSize: fileSizes[i]) }
            for j in 0..<i {
                let o = table[j]
                // Ends cannot wrap: checked above for both regions.
                if overlaps(r.guestAddress.rawValue, r.size, o.guestAddress.rawValue, o.size) {
                    throw .guestOverlap(region: i, other: j)
                }
                if overlaps(r.userAddress, r.size, o.userAddress, o.size) {
                    throw .userOverlap(region: i, other: j)
                }
            }
        }
    }

    private static func overlaps(_ a: UInt64, _ aSize: UInt64, _ b: UInt64, _ bSize: UInt64) -> Bool {
        a < b + bSize && b < a + aSize
    }

    // MARK: Translation

    /// Host pointer to `length` bytes at guest-physical `address`, all in one region.
    @inline(__always)
    func pointer(at address: GuestAddress, length: UInt64) throws(MemoryMapError) -> UnsafeMutableRawPointer {
        guard address.checkedAdd(length) != nil else { throw .rangeWraps(address: address.rawValue, length: length) }
        for r in regions where address.rawValue >= r.guestStart {
            let offset = address.rawValue - r.guestStart
            if offset < r.size, length <= r.size - offset { return r.host + Int(offset) }
        }
        throw .outOfRange(address, length: length)
    }

    /// True if `length` bytes at `address` lie inside one region.
    public func contains(_ address: GuestAddress, length: UInt64) -> Bool {
        (try? pointer(at: address, length: length)) != nil
    }

    /// The `length` bytes at guest-physical `address`, for zero-copy I/O.
    /// Valid while this map lives (keep it alive, e.g. `withExtendedLifetime`); the
    /// guest can change the bytes at any time.
    public func buffer(at address: GuestAddress, length: UInt64) throws(MemoryMapError) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: try pointer(at: address, length: length), count: Int(length))
    }

    /// Runs `body` on the bytes at `address`, keeping the map alive meanwhile.
    public func withBuffer<R>(at address: GuestAddress, length: UInt64,
                              _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        let buffer = try buffer(at: address, length: length)
        return try withExtendedLifetime(self) { try body(buffer) }
    }

    /// Guest-physical address of frontend-virtual `userAddress`, if `length` bytes
    /// from there lie inside one region (vhost-user ring addresses are user addresses).
    public func guestAddress(ofUser userAddress: UInt64, length: UInt64) throws(MemoryMapError) -> GuestAddress {
        guard !userAddress.addingReportingOverflow(length).overflow else {
            throw .rangeWraps(address: userAddress, length: length)
        }
        for r in regions where userAddress >= r.userStart {
            let offset = userAddress - r.userStart
            if offset < r.size, length <= r.size - offset { return GuestAddress(r.guestStart + offset) }
        }
        throw .userOutOfRange(userAddress: userAddress, length: length)
    }

    /// The `length` bytes at frontend-virtual `userAddress` (same validity as `buffer(at:length:)`).
    public func buffer(atUser userAddress: UInt64, length: UInt64) throws(MemoryMapError) -> UnsafeMutableRawBufferPointer {
        try buffer(at: try guestAddress(ofUser: userAddress, length: length), length: length)
    }

    // MARK: Copies

    /// Copies `count` bytes out of guest memory.
    public func read(at address: GuestAddress, count: Int) throws(MemoryMapError) -> [UInt8] {
        let source = try buffer(at: address, length: UInt64(max(count, 0)))
        return Array(source)
    }

    /// Copies `destination.count` bytes out of guest memory.
    public func read(at address: GuestAddress, into destination: UnsafeMutableRawBufferPointer) throws(MemoryMapError) {
        let source = try buffer(at: address, length: UInt64(destination.count))
        destination.copyMemory(from: UnsafeRawBufferPointer(source))
    }

    /// Copies `bytes` into guest memory.
    public func write(_ bytes: UnsafeRawBufferPointer, at address: GuestAddress) throws(MemoryMapError) {
        let destination = try buffer(at: address, length: UInt64(bytes.count))
        destination.copyMemory(from: bytes)
    }

    public func write(_ bytes: [UInt8], at address: GuestAddress) throws(MemoryMapError) {
        let destination = try buffer(at: address, length: UInt64(bytes.count))
        destination.copyBytes(from: bytes)
    }

    /// One unaligned little-endian load (virtio fields are little-endian).
    public func load<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at address: GuestAddress) throws(MemoryMapError) -> T {
        let p = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }

    /// One unaligned little-endian store.
    public func store<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at address: GuestAddress) throws(MemoryMapError) {
        let p = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        p.storeBytes(of: value.littleEndian, as: T.self)
    }
}
