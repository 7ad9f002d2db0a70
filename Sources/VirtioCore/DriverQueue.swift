import CShim

/// One buffer the driver side offers.
public struct DriverBuffer: Equatable, Sendable {
    public var address: GuestAddress
    public var length: UInt32
    public var writable: Bool

    public init(_ address: GuestAddress, length: UInt32, writable: Bool = false) {
        self.address = address
        self.length = length
        self.writable = writable
    }
}

/// The driver side of a split virtqueue (what a guest does, virtio 1.2, 2.7.13-2.7.14),
/// for tests and the test frontend. Trusted code: it does no hostile-input checks
/// beyond the memory map's bounds, and can write malformed descriptors on purpose.
public struct DriverQueue {
    public let memory: MemoryMap
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress
    /// avail.idx including entries offered but not yet published.
    public private(set) var availIndex: UInt16
    /// Next used entry the driver will read.
    public private(set) var lastUsed: UInt16
    /// Initial value of both ring indices.
    public let startIndex: UInt16
    /// Next descriptor handed out by `addChain` (simple round-robin allocation).
    public var nextFreeDescriptor: UInt16 = 0
    /// Host addresses of the available and used rings, checked once at init (the test
    /// frontend offers and collects every buffer through them: a map lookup per field
    /// was most of its cost per buffer). Valid while `memory` lives; unaligned is allowed.
    private let availHost: UnsafeMutableRawPointer
    private let usedHost: UnsafeMutableRawPointer

    /// Lays out the three parts contiguously from `base` (aligned as 2.7 requires),
    /// zeroes them, and starts both indices at `startIndex`.
    public init(memory: MemoryMap, size: UInt16, at base: GuestAddress, startIndex: UInt16 = 0) throws(MemoryMapError) {
        // Wrapping arithmetic: a bad base fails the memory map's bounds checks below.
        let avail = GuestAddress(base.rawValue &+ SplitRingLayout.descriptorTableSize(size))
        let used = GuestAddress((avail.rawValue &+ SplitRingLayout.availableRingSize(size) &+ 3) & ~3)
        try self.init(memory: memory, size: size, descriptorTable: base, availableRing: avail, usedRing: used,
                      startIndex: startIndex)
    }

    /// Uses explicit ring addresses (no alignment enforced: tests place them badly on purpose).
    public init(memory: MemoryMap, size: UInt16, descriptorTable: GuestAddress, availableRing: GuestAddress,
                usedRing: GuestAddress, startIndex: UInt16 = 0) throws(MemoryMapError) {
        precondition(size > 0, "DriverQueue: size 0")
        self.memory = memory
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.startIndex = startIndex
        self.availIndex = startIndex
        self.lastUsed = startIndex
        try memory.buffer(at: descriptorTable, length: SplitRingLayout.descriptorTableSize(size)).initializeMemory(as: UInt8.self, repeating: 0)
        let availBytes = try memory.buffer(at: availableRing, length: SplitRingLayout.availableRingSize(size))
        availBytes.initializeMemory(as: UInt8.self, repeating: 0)
        availHost = availBytes.baseAddress!
        let usedBytes = try memory.buffer(at: usedRing, length: SplitRingLayout.usedRingSize(size))
        usedBytes.initializeMemory(as: UInt8.self, repeating: 0)
        usedHost = usedBytes.baseAddress!
        try memory.store(startIndex, at: field(availableRing, SplitRingLayout.indexOffset))
        try memory.store(startIndex, at: field(usedRing, SplitRingLayout.indexOffset))
    }

    /// Guest address one past the used ring (where tests may put data).
    public var end: GuestAddress { field(usedRing, Int(SplitRingLayout.usedRingSize(size))) }

    private func field(_ base: GuestAddress, _ offset: Int) -> GuestAddress {
        GuestAddress(base.rawValue &+ UInt64(offset))
    }

    /// Writes one raw descriptor into `table` (default: the queue's own table).
    public func writeDescriptor(index: UInt16, address: GuestAddress, length: UInt32, flags: DescriptorFlags,
                                next: UInt16 = 0, table: GuestAddress? = nil) throws(MemoryMapError) {
        let entry = field(table ?? descriptorTable, 16 * Int(index))
        try memory.store(address.rawValue, at: entry)
        try memory.store(length, at: field(entry, 8))
        try memory.store(flags.rawValue, at: field(entry, 12))
        try memory.store(next, at: field(entry, 14))
    }

    /// Writes `buffers` as a direct chain in consecutive free descriptors and offers
    /// its head (unpublished). Returns the head index.
    @discardableResult
    public mutating func addChain(_ buffers: [DriverBuffer]) throws(MemoryMapError) -> UInt16 {
        let head = nextFreeDescriptor
        for (i, b) in buffers.enumerated() {
            let index = nextFreeDescriptor
            nextFreeDescriptor = (nextFreeDescriptor &+ 1) & (size &- 1)
            let last = i == buffers.count - 1
            var flags: DescriptorFlags = b.writable ? [.write] : []
            if !last { flags.insert(.next) }
            try writeDescriptor(index: index, address: b.address, length: b.length, flags: flags,
                                next: last ? 0 : nextFreeDescriptor)
        }
        try offer(head: head)
        return head
    }

    /// Writes `buffers` as an indirect table at `table` and offers one descriptor
    /// pointing at it. Returns the head index.
    @discardableResult
    public mutating func addIndirectChain(_ buffers: [DriverBuffer], table: GuestAddress) throws(MemoryMapError) -> UInt16 {
        for (i, b) in buffers.enumerated() {
            let last = i == buffers.count - 1
            var flags: DescriptorFlags = b.writable ? [.write] : []
            if !last { flags.insert(.next) }
            try writeDescriptor(index: UInt16(i), address: b.address, length: b.length, flags: flags,
                                next: last ? 0 : UInt16(i + 1), table: table)
        }
        let head = nextFreeDescriptor
        nextFreeDescriptor = (nextFreeDescriptor &+ 1) & (size &- 1)
        try writeDescriptor(index: head, address: table, length: UInt32(16 * buffers.count), flags: .indirect)
        try offer(head: head)
        return head
    }

    /// Puts `head` in the next avail ring slot (visible only after `publish()`).
    public mutating func offer(head: UInt16) throws(MemoryMapError) {
        let slot = Int(availIndex & (size &- 1))
        availHost.storeBytes(of: head.littleEndian, toByteOffset: SplitRingLayout.availEntryOffset(slot), as: UInt16.self)
        availIndex &+= 1
    }

    /// Release fence, then avail.idx (2.7.13.3.1).
    public func publish() throws(MemoryMapError) {
        volt_fence_release()
        availHost.storeBytes(of: availIndex.littleEndian, toByteOffset: SplitRingLayout.indexOffset, as: UInt16.self)
    }

    /// Writes avail.idx directly (to model a misbehaving driver).
    public mutating func setAvailIndex(_ index: UInt16) throws(MemoryMapError) {
        availIndex = index
        try memory.store(index, at: field(availableRing, SplitRingLayout.indexOffset))
    }

    /// Takes the next used element {id, len}, or nil if the device has published none.
    public mutating func popUsed() throws(MemoryMapError) -> (id: UInt32, length: UInt32)? {
        let index = try usedIndex()
        volt_fence_acquire()
        guard index != lastUsed else { return nil }
        let entry = SplitRingLayout.usedEntryOffset(Int(lastUsed & (size &- 1)))
        lastUsed &+= 1
        return (UInt32(littleEndian: usedHost.loadUnaligned(fromByteOffset: entry, as: UInt32.self)),
                UInt32(littleEndian: usedHost.loadUnaligned(fromByteOffset: entry + 4, as: UInt32.self)))
    }

    public func usedIndex() throws(MemoryMapError) -> UInt16 {
        UInt16(littleEndian: usedHost.loadUnaligned(fromByteOffset: SplitRingLayout.indexOffset, as: UInt16.self))
    }

    /// used_event: "notify me when you write the used entry at this index" (2.7.7).
    public func setUsedEvent(_ index: UInt16) throws(MemoryMapError) {
        try memory.store(index, at: field(availableRing, SplitRingLayout.usedEventOffset(size)))
    }

    /// avail.flags (1 = VIRTQ_AVAIL_F_NO_INTERRUPT).
    public func setAvailFlags(_ flags: UInt16) throws(MemoryMapError) {
        try memory.store(flags, at: field(availableRing, SplitRingLayout.flagsOffset))
    }

    /// avail_event written by the device (2.7.10).
    public func availEvent() throws(MemoryMapError) -> UInt16 {
        try memory.load(UInt16.self, at: field(usedRing, SplitRingLayout.availEventOffset(size)))
    }

    /// used.flags written by the device (1 = VIRTQ_USED_F_NO_NOTIFY).
    public func usedFlags() throws(MemoryMapError) -> UInt16 {
        try memory.load(UInt16.self, at: field(usedRing, SplitRingLayout.flagsOffset))
    }

    /// A device view of this queue on the same memory, starting at `startIndex`.
    public func deviceQueue(eventIdx: Bool = false) throws(VirtqueueError) -> Virtqueue {
        try Virtqueue(memory: memory, size: UInt32(size), descriptorTable: descriptorTable,
                      availableRing: availableRing, usedRing: usedRing, eventIdx: eventIdx,
                      nextAvail: startIndex, nextUsed: startIndex)
    }
}
