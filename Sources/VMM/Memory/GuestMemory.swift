import VirtioCore

/// Why the VM's guest RAM could not be made (accesses fail with VirtioCore's `MemoryMapError`).
enum GuestMemoryError: Error, CustomStringConvertible, Equatable {
    case invalidSize(UInt64)
    case file(MemoryMapError)

    var description: String {
        switch self {
        case let .invalidSize(size):
            return "cannot create guest memory: size \(size) must be a multiple of 4 KiB and at least \(Layout.minimumMemory >> 20) MiB"
        case let .file(error):
            return "\(error)"
        }
    }
}

/// All guest RAM as volt-vmm lays it out: one memfd ("volt-guest-ram", so device workers can
/// map it too), MAP_NORESERVE and MADV_DONTFORK (the launcher, forked later, never maps it),
/// split around the MMIO hole below 4 GiB. Every access is bounds-checked by VirtioCore's
/// `MemoryMap`; host addresses leave only for KVM's memory slots and the vhost memory tables.
///
/// The accessors take guest-physical addresses as `UInt64`, as `Layout` and the loaders
/// compute them, and wrap them in `GuestAddress` for the map.
final class GuestMemory: Sendable {
    struct Region: Equatable {
        let guestBase: UInt64
        let size: UInt64
        /// Offset of this region inside the memfd (and the host mapping).
        let fileOffset: UInt64
        var guestEnd: UInt64 { guestBase + size }
    }

    let size: UInt64
    let regions: [Region]
    let file: GuestMemoryFile
    /// The regions as a vhost-user backend maps them: `map.descriptors` is the memory table.
    let map: MemoryMap

    /// Splits `size` bytes of RAM around the MMIO hole: [0, hole) and [4 GiB, ...).
    static func layout(size: UInt64) -> [Region] {
        let low = min(size, Layout.mmioHoleStart)
        var regions = [Region(guestBase: 0, size: low, fileOffset: 0)]
        if size > low {
            regions.append(Region(guestBase: Layout.mmioHoleEnd, size: size - low, fileOffset: low))
        }
        return regions
    }

    init(size: UInt64) throws(GuestMemoryError) {
        guard size >= Layout.minimumMemory, size % 4096 == 0 else { throw .invalidSize(size) }
        let regions = Self.layout(size: size)
        do {
            file = try GuestMemoryFile(size: size, name: "volt-guest-ram", noReserve: true, doNotFork: true)
            map = try MemoryMap(frontend: file, regions: regions.map {
                FrontendRegion(guestAddress: GuestAddress($0.guestBase), size: $0.size, fileOffset: $0.fileOffset)
            })
        } catch {
            throw .file(error)
        }
        self.size = size
        self.regions = regions
    }

    /// Host address of the start of a region, for KVM_SET_USER_MEMORY_REGION.
    func hostAddress(of region: Region) -> UInt64 {
        file.userAddress(atOffset: region.fileOffset)
    }

    /// The `length` bytes at guest-physical `address`, all inside one region (accesses never
    /// straddle the hole): for the loaders' bulk copies and the rings' host addresses.
    func buffer(at address: UInt64, length: UInt64) throws(MemoryMapError) -> UnsafeMutableRawBufferPointer {
        try map.buffer(at: GuestAddress(address), length: length)
    }

    func contains(_ address: UInt64, length: UInt64) -> Bool {
        map.contains(GuestAddress(address), length: length)
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryMapError) {
        try map.write(bytes, at: GuestAddress(address))
    }

    func read(at address: UInt64, count: Int) throws(MemoryMapError) -> [UInt8] {
        try map.read(at: GuestAddress(address), count: count)
    }

    /// Stores an integer little-endian, as the guest expects on x86.
    func writeValue<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at address: UInt64) throws(MemoryMapError) {
        try map.store(value, at: GuestAddress(address))
    }

    /// Loads a little-endian integer.
    func readValue<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at address: UInt64) throws(MemoryMapError) -> T {
        try map.load(T.self, at: GuestAddress(address))
    }
}
