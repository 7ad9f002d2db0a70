import VirtioCore

/// A range of guest memory handed out by `GuestBufferAllocator`.
public struct GuestBuffer: Hashable, Sendable {
    public let address: GuestAddress
    public let length: UInt32

    public init(address: GuestAddress, length: UInt32) {
        self.address = address
        self.length = length
    }
}

/// First-fit free-list allocator over one guest-physical range, for data buffers and
/// indirect tables. Blocks are aligned to `alignment` (64: a cache line, and more than
/// the 16 an indirect table needs). Freed blocks merge with their neighbours.
public struct GuestBufferAllocator {
    public static let alignment: UInt64 = 64

    /// Free blocks as (start, size), sorted by start, never adjacent.
    private var free: [(start: UInt64, size: UInt64)]
    /// Size actually reserved for each live block (its length rounded up).
    private var live: [UInt64: UInt64] = [:]

    /// Manages [start, start + size); `start` is rounded up to the alignment.
    public init(start: GuestAddress, size: UInt64) {
        let aligned = Self.roundUp(start.rawValue)
        let end = start.rawValue + size
        free = aligned < end ? [(aligned, (end - aligned) & ~(Self.alignment - 1))] : []
    }

    public var freeBytes: UInt64 { free.reduce(0) { $0 + $1.size } }

    /// A block of `length` bytes (zero-length requests get one aligned unit), or nil.
    public mutating func allocate(_ length: UInt32) -> GuestBuffer? {
        let need = Self.roundUp(max(UInt64(length), 1))
        guard let i = free.firstIndex(where: { $0.size >= need }) else { return nil }
        let start = free[i].start
        if free[i].size == need { free.remove(at: i) } else { free[i] = (start + need, free[i].size - need) }
        live[start] = need
        return GuestBuffer(address: GuestAddress(start), length: length)
    }

    /// Returns a block; freeing one that is not live is ignored (and reported by the result).
    @discardableResult
    public mutating func release(_ buffer: GuestBuffer) -> Bool {
        let start = buffer.address.rawValue
        guard let size = live.removeValue(forKey: start) else { return false }
        let i = free.firstIndex(where: { $0.start > start }) ?? free.count
        free.insert((start, size), at: i)
        if i + 1 < free.count, free[i].start + free[i].size == free[i + 1].start {
            free[i].size += free[i + 1].size
            free.remove(at: i + 1)
        }
        if i > 0, free[i - 1].start + free[i - 1].size == free[i].start {
            free[i - 1].size += free[i].size
            free.remove(at: i)
        }
        return true
    }

    private static func roundUp(_ value: UInt64) -> UInt64 { (value + alignment - 1) & ~(alignment - 1) }
}
