import SystemPackage

/// Everything that can be wrong with a guest memory table or a guest memory access.
/// Bad frontend or guest input always ends here, never in a trap.
public enum MemoryMapError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The table has no regions at all.
    case noRegions
    /// More regions than the backend accepts (vhost-user's default is 8).
    case tooManyRegions(count: Int, limit: Int)
    /// A region of size 0.
    case zeroSize(region: Int)
    /// guest address + size does not fit in 64 bits.
    case guestRangeWraps(region: Int)
    /// user address + size does not fit in 64 bits.
    case userRangeWraps(region: Int)
    /// mmap offset + size does not fit in 64 bits.
    case fileRangeWraps(region: Int)
    /// Two regions share guest-physical addresses.
    case guestOverlap(region: Int, other: Int)
    /// Two regions share frontend-virtual (user) addresses.
    case userOverlap(region: Int, other: Int)
    /// mmap offset + size runs past the end of the region's file.
    case exceedsFile(region: Int, end: UInt64, fileSize: UInt64)
    /// fstat on the region's fd failed.
    case fstatFailed(region: Int, Errno)
    /// mmap of the region failed.
    case mmapFailed(region: Int, Errno)
    /// Creating a memfd-backed guest memory file failed at `step`.
    case createFailed(step: String, Errno)
    /// address + length does not fit in 64 bits.
    case rangeWraps(address: UInt64, length: UInt64)
    /// The guest-physical range is not wholly inside one region.
    case outOfRange(GuestAddress, length: UInt64)
    /// The frontend-virtual (user) range is not wholly inside one region.
    case userOutOfRange(userAddress: UInt64, length: UInt64)

    public var description: String {
        switch self {
        case .noRegions:
            return "memory table has no regions"
        case let .tooManyRegions(count, limit):
            return "memory table has \(count) regions, at most \(limit) are accepted"
        case let .zeroSize(region):
            return "memory region \(region) has size 0"
        case let .guestRangeWraps(region):
            return "memory region \(region): guest address + size overflows 64 bits"
        case let .userRangeWraps(region):
            return "memory region \(region): user address + size overflows 64 bits"
        case let .fileRangeWraps(region):
            return "memory region \(region): mmap offset + size overflows 64 bits"
        case let .guestOverlap(region, other):
            return "memory regions \(other) and \(region) overlap in guest-physical space"
        case let .userOverlap(region, other):
            return "memory regions \(other) and \(region) overlap in frontend-virtual space"
        case let .exceedsFile(region, end, fileSize):
            return "memory region \(region) ends at file offset \(hex(end)), past the fd's size \(hex(fileSize))"
        case let .fstatFailed(region, errno):
            return "memory region \(region): fstat failed: \(errno)"
        case let .mmapFailed(region, errno):
            return "memory region \(region): mmap failed: \(errno)"
        case let .createFailed(step, errno):
            return "cannot create guest memory file: \(step) failed: \(errno)"
        case let .rangeWraps(address, length):
            return "guest range \(hex(address)) + \(hex(length)) overflows 64 bits"
        case let .outOfRange(address, length):
            return "guest range of \(length) bytes at \(address) is not inside one memory region"
        case let .userOutOfRange(userAddress, length):
            return "user range of \(length) bytes at \(hex(userAddress)) is not inside one memory region"
        }
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
