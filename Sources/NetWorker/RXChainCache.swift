import Glibc
import VirtioCore

/// RX chains taken from the ring and not yet used, oldest first, with their avail index:
/// a ring over storage of its own, so the oldest leaving moves nothing, and chains are
/// parsed into their slot and used there. Copying a chain (~150 bytes and its spill
/// array) was most of the per-frame work when this was an array of entries: every read
/// through an array subscript copied the entry. The cache is noncopyable (it owns the
/// storage); the handler moves it into a local for a whole batch (`swap`: one
/// exclusivity check per batch, not one per use). Slots past `count` keep old chains
/// until overwritten; they are never read.
///
/// Chains point into guest memory without holding it: the cache holds the memory map of
/// every chain it keeps (one reference, not one per chain), so a SET_MEM_TABLE that
/// replaces the queue's map never unmaps a buffer still cached here.
struct RXChainCache: ~Copyable {
    struct Entry {
        var chain = DescriptorChain()
        var availIndex: UInt16 = 0
        /// Which map the chain points into (`mapGeneration` when it was taken).
        var mapGeneration: UInt32 = 0
    }

    /// `capacity` initialized entries (a power of two), or none when `capacity` is 0.
    private var slots: UnsafeMutablePointer<Entry>
    private var capacity: Int
    private var start = 0
    private(set) var count = 0
    /// Sum of the cached chains' writable lengths.
    private(set) var space = 0
    /// The map the newest chains point into, and older ones still in use by cached
    /// chains, each with its generation (bumped per new map). An older map goes as soon
    /// as no cached chain of its generation or before is left.
    private var memory: MemoryMap?
    private var mapGeneration: UInt32 = 0
    private var olderMemory: [(generation: UInt32, map: MemoryMap)] = []

    /// `capacity` 0: no storage (a placeholder to swap with, allocation-free).
    init(capacity: Int = 16) {
        var c = capacity > 0 ? 1 : 0
        while c < capacity { c <<= 1 }
        self.capacity = c
        slots = Self.allocate(c)
    }

    deinit {
        Self.free(slots, capacity)
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Entry> {
        guard capacity > 0 else { return UnsafeMutablePointer(bitPattern: MemoryLayout<Entry>.alignment)! }
        let p = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        p.initialize(repeating: Entry(), count: capacity)
        return p
    }

    private static func free(_ p: UnsafeMutablePointer<Entry>, _ capacity: Int) {
        guard capacity > 0 else { return }
        p.deinitialize(count: capacity)
        p.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private func slot(_ i: Int) -> UnsafeMutablePointer<Entry> {
        precondition(i >= 0 && i < count, "RXChainCache index out of range")
        return slots + ((start &+ i) & (capacity &- 1))
    }

    /// `DescriptorChain.copyToWritable` / `copyFromWritable` on the `i`-th oldest chain
    /// (0 ≤ i < count), where it lies (no copy of the chain).
    func copyToWritable(_ i: Int, offset: Int = 0, from source: UnsafeRawBufferPointer) -> Int {
        slot(i).pointee.chain.copyToWritable(offset: offset, from: source)
    }
    func copyFromWritable(_ i: Int, into destination: UnsafeMutableRawBufferPointer) -> Int {
        slot(i).pointee.chain.copyFromWritable(into: destination)
    }
    /// `DescriptorChain.fillIovecs` on the writable part of the `i`-th oldest chain, in place.
    func fillWritableIovecs(_ i: Int, into storage: UnsafeMutableBufferPointer<iovec>, skip: UInt64) -> Int {
        slot(i).pointee.chain.fillIovecs(writable: true, into: storage, skip: skip)
    }
    /// The oldest chain's first writable buffer.
    func firstBufferOfFirstChain() -> UnsafeMutableRawBufferPointer? { slot(0).pointee.chain.firstWritableBuffer }
    func head(_ i: Int) -> UInt16 { slot(i).pointee.chain.head }
    func writableLength(_ i: Int) -> Int { Int(slot(i).pointee.chain.writableLength) }
    func writableCount(_ i: Int) -> Int { slot(i).pointee.chain.writableCount }
    func availIndex(_ i: Int) -> UInt16 { slot(i).pointee.availIndex }

    /// Takes the next available chain of `q` into a new newest entry, parsed in place.
    /// False if `q` has none. On a thrown error nothing was added.
    mutating func appendNext(from q: inout Virtqueue) throws(VirtqueueError) -> Bool {
        if q.memory !== memory {
            if count > 0, let memory { olderMemory.append((mapGeneration, memory)) }
            memory = q.memory
            mapGeneration &+= 1
        }
        if count == capacity { grow() }
        let p = slots + ((start &+ count) & (capacity &- 1))
        let index = q.nextAvail
        guard try q.popAvailable(into: &p.pointee.chain) else { return false }
        p.pointee.availIndex = index
        p.pointee.mapGeneration = mapGeneration
        count += 1
        space += Int(p.pointee.chain.writableLength)
        return true
    }

    /// Drops the newest entry (a chain found unusable right after `appendNext`).
    mutating func removeLast() {
        precondition(count > 0, "RXChainCache: removing from an empty cache")
        space -= writableLength(count - 1)
        count -= 1
        if !olderMemory.isEmpty { dropUnusedMaps() }
    }

    /// Drops the `n` oldest entries.
    mutating func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count, "RXChainCache: removing more than cached")
        for i in 0..<n { space -= writableLength(i) }
        start = (start &+ n) & (capacity &- 1)
        count -= n
        if !olderMemory.isEmpty { dropUnusedMaps() }
    }

    /// Releases the older maps no cached chain points into any more (entries and maps
    /// both run oldest first; a generation is a UInt32 bumped per map change).
    private mutating func dropUnusedMaps() {
        let oldestInUse = count > 0 ? slot(0).pointee.mapGeneration : mapGeneration
        olderMemory.removeAll { $0.generation < oldestInUse }
    }

    /// Older maps still held for cached chains (tests).
    var heldOlderMaps: Int { olderMemory.count }

    /// Drops every entry and the maps they held.
    mutating func removeAll() {
        start = 0
        count = 0
        space = 0
        memory = nil
        olderMemory.removeAll()
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
        let bigger = Swift.max(16, capacity * 2)
        let p = Self.allocate(bigger)
        for i in 0..<count { p[i] = slot(i).pointee }
        Self.free(slots, capacity)
        slots = p
        capacity = bigger
        start = 0
    }
}
