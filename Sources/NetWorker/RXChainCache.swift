import VirtioCore

/// RX chains taken from the ring and not yet used, oldest first, with their avail index:
/// a ring buffer over an array, so the oldest leaving moves nothing. Entries are a struct,
/// not a tuple, and not optional: an array of tuples of non-trivial values was copied and
/// destroyed through the runtime's generic tuple witnesses (~280 instructions per RX
/// frame), optional slots through the generic Optional witnesses. A slot that was
/// consumed keeps its old entry until overwritten (at most `capacity` chains, which keep
/// their memory map alive a little longer); `removeAll()` drops them all. The handler
/// moves the cache into a local for a whole batch (one exclusivity check, not one per use).
struct RXChainCache {
    struct Entry {
        var chain: DescriptorChain
        var availIndex: UInt16
    }

    /// Filled from index 0 up, then reused as a ring of `capacity` (a power of two).
    private var slots: [Entry] = []
    private var capacity: Int
    private var start = 0
    private(set) var count = 0
    /// Sum of the cached chains' writable lengths.
    private(set) var space = 0

    /// `capacity` 0: no storage (a placeholder to swap with, allocation-free).
    init(capacity: Int = 16) {
        var c = capacity > 0 ? 1 : 0
        while c < capacity { c <<= 1 }
        self.capacity = c
    }

    var isEmpty: Bool { count == 0 }

    private func slot(_ i: Int) -> Int {
        precondition(i >= 0 && i < count, "RXChainCache index out of range")
        return (start &+ i) & (capacity &- 1)
    }

    /// The `i`-th oldest chain (0 ≤ i < count).
    func chain(_ i: Int) -> DescriptorChain { slots[slot(i)].chain }
    func head(_ i: Int) -> UInt16 { slots[slot(i)].chain.head }
    func writableLength(_ i: Int) -> Int { Int(slots[slot(i)].chain.writableLength) }
    func availIndex(_ i: Int) -> UInt16 { slots[slot(i)].availIndex }

    /// Runs `body` on the oldest chain in place (no copy).
    func withFirst<R>(_ body: (borrowing DescriptorChain) -> R) -> R { body(slots[slot(0)].chain) }

    mutating func append(_ chain: consuming DescriptorChain, availIndex: UInt16) {
        if count == capacity { grow() }
        let length = Int(chain.writableLength)
        let p = (start &+ count) & (capacity &- 1)
        if p == slots.count {
            slots.append(Entry(chain: chain, availIndex: availIndex))
        } else {
            slots[p] = Entry(chain: chain, availIndex: availIndex)
        }
        count += 1
        space += length
    }

    /// Drops the `n` oldest entries.
    mutating func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count, "RXChainCache: removing more than cached")
        for i in 0..<n { space -= writableLength(i) }
        start = (start &+ n) & (capacity &- 1)
        count -= n
    }

    /// Drops every entry, consumed slots included.
    mutating func removeAll() {
        slots.removeAll()
        start = 0
        count = 0
        space = 0
    }

    /// Whether the entries' avail indices run on one by one from the oldest, up to `next`
    /// (so the whole cache can be un-consumed by moving nextAvail back).
    func isContiguous(endingBefore next: UInt16) -> Bool {
        guard count > 0 else { return true }
        let first = availIndex(0)
        for i in 0..<count where availIndex(i) != first &+ UInt16(truncatingIfNeeded: i) { return false }
        return first &+ UInt16(truncatingIfNeeded: count) == next
    }

    private mutating func grow() {
        var bigger: [Entry] = []
        bigger.reserveCapacity(Swift.max(16, capacity * 2))
        for i in 0..<count { bigger.append(slots[slot(i)]) }
        slots = bigger
        capacity = Swift.max(16, capacity * 2)
        start = 0
    }
}
