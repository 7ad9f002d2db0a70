// Payload layouts from the vhost-user spec ("Payload" section of
// docs/interop/vhost-user.rst). Each type has encode(), decode(from:) which checks the
// exact size, and validate() for field rules that do not depend on protocol state.

/// "A vring state description": index u32, num u32 (SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE).
public struct VringState: Equatable, Sendable {
    public static let size = 8
    public var index: UInt32
    public var num: UInt32

    public init(index: UInt32, num: UInt32) { self.index = index; self.num = num }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u32(index); w.u32(num)
        return w.bytes
    }

    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> VringState {
        try expectSize(bytes, Self.size)
        var r = ByteReader(bytes)
        return VringState(index: r.u32(), num: r.u32())
    }
}

/// "A vring address description" (struct vhost_vring_addr): 40 bytes. The three ring
/// addresses are front-end user addresses (no IOMMU), the log address a guest address.
public struct VringAddress: Equatable, Sendable {
    public static let size = 40
    /// VHOST_VRING_F_LOG: log used-ring writes (migration); the only defined flag.
    public static let logFlag: UInt32 = 1 << 0

    public var index: UInt32
    public var flags: UInt32
    public var descriptorTable: UInt64
    public var usedRing: UInt64
    public var availableRing: UInt64
    public var logGuestAddress: UInt64

    public init(index: UInt32, flags: UInt32 = 0, descriptorTable: UInt64, usedRing: UInt64,
                availableRing: UInt64, logGuestAddress: UInt64 = 0) {
        self.index = index; self.flags = flags; self.descriptorTable = descriptorTable
        self.usedRing = usedRing; self.availableRing = availableRing; self.logGuestAddress = logGuestAddress
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u32(index); w.u32(flags)
        w.u64(descriptorTable); w.u64(usedRing); w.u64(availableRing); w.u64(logGuestAddress)
        return w.bytes
    }

    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> VringAddress {
        try expectSize(bytes, Self.size)
        var r = ByteReader(bytes)
        return VringAddress(index: r.u32(), flags: r.u32(), descriptorTable: r.u64(),
                            usedRing: r.u64(), availableRing: r.u64(), logGuestAddress: r.u64())
    }

    public func validate() throws(MessageFault) {
        if flags & ~Self.logFlag != 0 { throw .reservedBits(UInt64(flags)) }
    }
}

/// The u64 of SET_VRING_KICK/CALL/ERR: bits 0-7 vring index, bit 8 "no fd" (polling).
public struct VringFdPayload: Equatable, Sendable {
    public static let size = 8
    public static let indexMask: UInt64 = 0xff
    public static let noFdFlag: UInt64 = 1 << 8

    public var index: UInt8
    public var noFd: Bool

    public init(index: UInt8, noFd: Bool) { self.index = index; self.noFd = noFd }

    public var value: UInt64 { UInt64(index) | (noFd ? Self.noFdFlag : 0) }

    public func encode() -> [UInt8] { encodeU64(value) }

    /// Decodes and validates: bits 9-63 are not defined by the spec and must be zero.
    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> VringFdPayload {
        let v = try decodeU64(bytes)
        let reserved = v & ~(indexMask | noFdFlag)
        if reserved != 0 { throw .reservedBits(reserved) }
        return VringFdPayload(index: UInt8(v & indexMask), noFd: v & noFdFlag != 0)
    }

    /// Number of fds the message must carry.
    public var expectedFds: Int { noFd ? 0 : 1 }
}

/// One "memory region description": 32 bytes.
public struct MemoryRegion: Equatable, Sendable {
    public static let size = 32
    public var guestAddress: UInt64
    public var size: UInt64
    /// Front-end virtual address of the region (what vring addresses refer to).
    public var userAddress: UInt64
    /// Offset of the region inside the fd passed with it.
    public var mmapOffset: UInt64

    public init(guestAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestAddress = guestAddress; self.size = size
        self.userAddress = userAddress; self.mmapOffset = mmapOffset
    }

    func encode(into w: inout ByteWriter) {
        w.u64(guestAddress); w.u64(size); w.u64(userAddress); w.u64(mmapOffset)
    }

    static func decode(_ r: inout ByteReader) -> MemoryRegion {
        MemoryRegion(guestAddress: r.u64(), size: r.u64(), userAddress: r.u64(), mmapOffset: r.u64())
    }
}

/// "Multiple memory regions description": num u32, padding u32, then num regions.
/// SET_MEM_TABLE carries exactly 8 + 32 * num bytes and one fd per region, in order.
public struct MemoryTable: Equatable, Sendable {
    public static let headerSize = 8
    public var regions: [MemoryRegion]

    public init(regions: [MemoryRegion]) { self.regions = regions }

    public static func size(regionCount: Int) -> Int { headerSize + MemoryRegion.size * regionCount }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size(regionCount: regions.count))
        w.u32(UInt32(truncatingIfNeeded: regions.count)); w.u32(0)
        for region in regions { region.encode(into: &w) }
        return w.bytes
    }

    /// Decodes the count, then checks the size matches it exactly (and the count is in
    /// 1...maxRegions before trusting it for anything).
    public static func decode(from bytes: [UInt8], maxRegions: Int = VhostUser.maxMemoryRegions)
        throws(MessageFault) -> MemoryTable {
        guard bytes.count >= headerSize else { throw .wrongSize(expected: headerSize, actual: bytes.count) }
        var r = ByteReader(bytes)
        let count = r.u32()
        r.skip(4)
        guard count >= 1, count <= UInt32(maxRegions) else { throw .regionCount(count) }
        try expectSize(bytes, size(regionCount: Int(count)))
        return MemoryTable(regions: (0..<Int(count)).map { _ in MemoryRegion.decode(&r) })
    }

    /// Each region non-empty, no address range wraps around, no two regions overlap in
    /// guest-physical or front-end user space.
    public func validate(maxRegions: Int = VhostUser.maxMemoryRegions) throws(MessageFault) {
        guard !regions.isEmpty, regions.count <= maxRegions else { throw .regionCount(UInt32(regions.count)) }
        for (i, region) in regions.enumerated() {
            if region.size == 0 { throw .emptyRegion(index: i) }
            let end = region.size - 1
            if region.guestAddress.addingReportingOverflow(end).overflow
                || region.userAddress.addingReportingOverflow(end).overflow
                || region.mmapOffset.addingReportingOverflow(end).overflow {
                throw .regionOverflow(index: i)
            }
        }
        for i in regions.indices {
            for j in regions.indices where j > i {
                let a = regions[i], b = regions[j]
                if overlaps(a.guestAddress, a.size, b.guestAddress, b.size)
                    || overlaps(a.userAddress, a.size, b.userAddress, b.size) {
                    throw .regionsOverlap(i, j)
                }
            }
        }
    }
}

/// "Virtio device config space": offset u32, size u32, flags u32, then size bytes.
public struct DeviceConfig: Equatable, Sendable {
    public static let headerSize = 12
    /// flags = 1: write issued for live migration (may touch read-only fields).
    public static let liveMigrationFlag: UInt32 = 1

    public var offset: UInt32
    public var size: UInt32
    public var flags: UInt32
    /// `size` bytes; zeros in a GET_CONFIG request.
    public var data: [UInt8]

    public init(offset: UInt32, size: UInt32, flags: UInt32 = 0, data: [UInt8]) {
        self.offset = offset; self.size = size; self.flags = flags; self.data = data
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.headerSize + data.count)
        w.u32(offset); w.u32(size); w.u32(flags); w.raw(data)
        return w.bytes
    }

    /// Checks `size` against the bytes actually present, then the field rules.
    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> DeviceConfig {
        guard bytes.count >= headerSize else { throw .wrongSize(expected: headerSize, actual: bytes.count) }
        var r = ByteReader(bytes)
        let offset = r.u32(), size = r.u32(), flags = r.u32()
        if size > UInt32(VhostUser.maxConfigSize) { throw .configTooLarge(size) }
        try expectSize(bytes, headerSize + Int(size))
        let config = DeviceConfig(offset: offset, size: size, flags: flags, data: r.rest())
        try config.validate()
        return config
    }

    public func validate() throws(MessageFault) {
        if size > UInt32(VhostUser.maxConfigSize) { throw .configTooLarge(size) }
        let (end, overflow) = offset.addingReportingOverflow(size)
        if overflow || end > UInt32(VhostUser.maxConfigSize) { throw .configOutOfBounds(offset: offset, size: size) }
        if flags > Self.liveMigrationFlag { throw .configFlags(flags) }
        if data.count != Int(size) { throw .wrongSize(expected: Int(size), actual: data.count) }
    }
}

/// "Inflight description": mmap size u64, mmap offset u64, num queues u16, queue size u16.
/// On the wire it is the C struct with natural alignment, so 4 padding bytes follow: 24.
public struct InflightDescription: Equatable, Sendable {
    public static let size = 24
    public var mmapSize: UInt64
    public var mmapOffset: UInt64
    public var numQueues: UInt16
    public var queueSize: UInt16

    public init(mmapSize: UInt64 = 0, mmapOffset: UInt64 = 0, numQueues: UInt16, queueSize: UInt16) {
        self.mmapSize = mmapSize; self.mmapOffset = mmapOffset
        self.numQueues = numQueues; self.queueSize = queueSize
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u64(mmapSize); w.u64(mmapOffset); w.u16(numQueues); w.u16(queueSize); w.zeros(4)
        return w.bytes
    }

    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> InflightDescription {
        try expectSize(bytes, Self.size)
        var r = ByteReader(bytes)
        return InflightDescription(mmapSize: r.u64(), mmapOffset: r.u64(), numQueues: r.u16(), queueSize: r.u16())
    }
}

// MARK: - helpers

public func encodeU64(_ v: UInt64) -> [UInt8] {
    var w = ByteWriter(capacity: 8)
    w.u64(v)
    return w.bytes
}

public func decodeU64(_ bytes: [UInt8]) throws(MessageFault) -> UInt64 {
    try expectSize(bytes, 8)
    var r = ByteReader(bytes)
    return r.u64()
}

func expectSize(_ bytes: [UInt8], _ size: Int) throws(MessageFault) {
    if bytes.count != size { throw .wrongSize(expected: size, actual: bytes.count) }
}

/// Half-open ranges [a, a+la) and [b, b+lb), both known not to wrap.
private func overlaps(_ a: UInt64, _ la: UInt64, _ b: UInt64, _ lb: UInt64) -> Bool {
    a <= b ? b - a < la : a - b < lb
}
