import CShim

/// Byte layout of a split virtqueue's three parts (virtio 1.2, 2.7).
public enum SplitRingLayout {
    /// Alignments from the table in 2.7 (required of the driver by 2.7.1).
    public static let descriptorAlignment: UInt64 = 16
    public static let availableAlignment: UInt64 = 2
    public static let usedAlignment: UInt64 = 4

    /// 16 * N.
    public static func descriptorTableSize(_ size: UInt16) -> UInt64 { 16 * UInt64(size) }
    /// flags, idx, ring[N], used_event: 6 + 2 * N.
    public static func availableRingSize(_ size: UInt16) -> UInt64 { 6 + 2 * UInt64(size) }
    /// flags, idx, ring[N] of {le32 id, le32 len}, avail_event: 6 + 8 * N.
    public static func usedRingSize(_ size: UInt16) -> UInt64 { 6 + 8 * UInt64(size) }

    static let flagsOffset = 0
    public static let indexOffset = 2
    static let ringOffset = 4
    static func availEntryOffset(_ slot: Int) -> Int { ringOffset + 2 * slot }
    static func usedEntryOffset(_ slot: Int) -> Int { ringOffset + 8 * slot }
    /// used_event sits after avail.ring[N]; avail_event after used.ring[N] (2.7.6, 2.7.8).
    static func usedEventOffset(_ size: UInt16) -> Int { availEntryOffset(Int(size)) }
    static func availEventOffset(_ size: UInt16) -> Int { usedEntryOffset(Int(size)) }

    /// VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.6) and VIRTQ_USED_F_NO_NOTIFY (2.7.8).
    public static let availNoInterrupt: UInt16 = 1
    public static let usedNoNotify: UInt16 = 1
}

/// The device side of one split virtqueue over a memory map.
///
/// Not thread-safe: one queue is driven by one thread. The guest writes the driver
/// parts concurrently; every shared field is read once (atomically for indices)
/// and validated before use.
public struct Virtqueue {
    public static let maxSize: UInt32 = 32768

    public let memory: MemoryMap
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress
    /// VIRTIO_F_EVENT_IDX negotiated.
    public let eventIdx: Bool

    /// Free-running index of the next avail entry to consume (vhost-user
    /// SET_VRING_BASE sets it, GET_VRING_BASE reads it).
    /// Moving it from outside (a chain put back, a new ring base) makes the next
    /// `pendingCount` read avail.idx again.
    public var nextAvail: UInt16 {
        get { consumedAvail }
        set { consumedAvail = newValue; availShadow = newValue }
    }
    var consumedAvail: UInt16
    /// Free-running index of the next used entry to write. Setting it also takes it as
    /// the published and last-notified position.
    public var nextUsed: UInt16 {
        get { stagedUsed }
        set { stagedUsed = newValue; publishedUsed = newValue; signalledUsed = newValue }
    }

    /// avail.idx as last read (and validated) from the ring: while it is ahead of
    /// `nextAvail` the entries up to it are known published, so popping them needs no
    /// new read of avail.idx, a line the driver keeps writing (vhost caches it the same
    /// way). Equal to `nextAvail` when nothing is known.
    var availShadow: UInt16

    var stagedUsed: UInt16
    /// Value last written to used.idx.
    var publishedUsed: UInt16
    /// used.idx at the last `needsNotification()` (vring_need_event's "old").
    var signalledUsed: UInt16

    let desc: UnsafeMutableRawPointer
    let avail: UnsafeMutableRawPointer
    let used: UnsafeMutableRawPointer

    /// Validates the ring setup (size, alignment, extents in memory) and keeps the
    /// translated ring pointers. `size` is a UInt32 as vhost-user carries it.
    public init(memory: MemoryMap, size: UInt32, descriptorTable: GuestAddress, availableRing: GuestAddress,
                usedRing: GuestAddress, eventIdx: Bool, nextAvail: UInt16 = 0, nextUsed: UInt16 = 0) throws(VirtqueueError) {
        // Queue size is a power of 2, at most 32768 (2.7).
        guard size >= 1, size <= Self.maxSize, size & (size - 1) == 0 else { throw .invalidSize(size) }
        let n = UInt16(size)
        self.memory = memory
        self.size = n
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.eventIdx = eventIdx
        self.consumedAvail = nextAvail
        self.availShadow = nextAvail
        self.stagedUsed = nextUsed
        self.publishedUsed = nextUsed
        self.signalledUsed = nextUsed
        // Alignment and size per part: the table in 2.7, required by 2.7.1. Each part is
        // physically contiguous (2.7), so it must lie in one region. The host pointer
        // must be aligned too, for the atomic index accesses.
        desc = try Self.part(.descriptorTable, descriptorTable, SplitRingLayout.descriptorTableSize(n),
                             SplitRingLayout.descriptorAlignment, memory)
        avail = try Self.part(.availableRing, availableRing, SplitRingLayout.availableRingSize(n),
                              SplitRingLayout.availableAlignment, memory)
        used = try Self.part(.usedRing, usedRing, SplitRingLayout.usedRingSize(n),
                             SplitRingLayout.usedAlignment, memory)
    }

    private static func part(_ part: RingPart, _ address: GuestAddress, _ length: UInt64, _ alignment: UInt64,
                             _ memory: MemoryMap) throws(VirtqueueError) -> UnsafeMutableRawPointer {
        guard address.isAligned(to: alignment) else { throw .misaligned(part, address) }
        guard let p = try? memory.pointer(at: address, length: length) else {
            throw .ringOutOfMemory(part, address, length: length)
        }
        guard UInt(bitPattern: p) % UInt(alignment) == 0 else { throw .misaligned(part, address) }
        return p
    }

    /// avail.idx, loaded once, then an acquire fence so the ring entries and
    /// descriptors read afterwards are at least as new (2.7.13.3).
    func loadAvailIndex() -> UInt16 {
        let index = UInt16(littleEndian: volt_load_u16(avail + SplitRingLayout.indexOffset))
        volt_fence_acquire()
        return index
    }

    /// Chains the driver has made available and the device not yet taken: those seen at
    /// the last read of avail.idx, or, once they are all taken, a new read.
    public mutating func pendingCount() throws(VirtqueueError) -> UInt16 {
        // Entries seen published at the last read and not yet taken.
        let known = availShadow &- consumedAvail
        if known != 0 { return known }
        let availIndex = loadAvailIndex()
        let pending = availIndex &- nextAvail
        // The ring holds at most N entries (2.7, 2.7.13), so a well-behaved driver is
        // never more than N ahead; more is a broken or hostile driver.
        guard pending <= size else { throw .availIndexJump(nextAvail: nextAvail, availIndex: availIndex, size: size) }
        availShadow = availIndex
        return pending
    }

    /// Takes the next available chain, walked and validated, or nil if none.
    /// On `.malformedChain` the entry is consumed (`nextAvail` advanced).
    public mutating func popAvailable() throws(VirtqueueError) -> DescriptorChain? {
        var chain = DescriptorChain()
        return try popAvailable(into: &chain) ? chain : nil
    }

    /// Same, filling `chain` in place (what a hot path reuses instead of a new value
    /// per chain). False, `chain` untouched, if nothing is available.
    public mutating func popAvailable(into chain: inout DescriptorChain) throws(VirtqueueError) -> Bool {
        guard try pendingCount() > 0 else { return false }
        let slot = Int(nextAvail & (size - 1))
        let head = UInt16(littleEndian: volt_load_u16(avail + SplitRingLayout.availEntryOffset(slot)))
        consumedAvail &+= 1
        do {
            try ChainParser.parse(into: &chain, head: head, table: desc, queueSize: size, memory: memory)
            return true
        } catch {
            throw .malformedChain(head: head, error)
        }
    }
}

extension Virtqueue {
    /// Walks the chain starting at descriptor `head` without touching the available
    /// ring: for resubmitting a head taken before a back-end restart (vhost-user
    /// inflight tracking). Validated exactly like a popped chain.
    public func chain(head: UInt16) throws(VirtqueueError) -> DescriptorChain {
        var chain = DescriptorChain()
        do {
            try ChainParser.parse(into: &chain, head: head, table: desc, queueSize: size, memory: memory)
            return chain
        } catch {
            throw .malformedChain(head: head, error)
        }
    }

    /// used.idx as the ring holds it now (what the driver has been shown).
    public func usedIndexInRing() -> UInt16 {
        UInt16(littleEndian: volt_load_u16(used + SplitRingLayout.indexOffset))
    }
}
