/// Descriptor flag bits (virtio 1.2, 2.7.5, struct virtq_desc).
public struct DescriptorFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The buffer continues via `next`.
    public static let next = DescriptorFlags(rawValue: 1)
    /// Device write-only (otherwise device read-only).
    public static let write = DescriptorFlags(rawValue: 2)
    /// The buffer is a table of descriptors (2.7.5.3).
    public static let indirect = DescriptorFlags(rawValue: 4)
}

/// One validated buffer of a chain: wholly inside one memory region.
public struct DescriptorBuffer: Equatable {
    public let address: GuestAddress
    public let length: UInt32
    /// Device-writable (driver→device buffers are not).
    public let writable: Bool
    /// Host address, translated once at validation (valid while the queue's map lives).
    @usableFromInline let host: UnsafeMutableRawPointer

    public static func == (a: DescriptorBuffer, b: DescriptorBuffer) -> Bool {
        a.address == b.address && a.length == b.length && a.writable == b.writable
    }
}

/// A descriptor chain taken from the available ring, already walked and validated:
/// device-readable buffers first, then device-writable ones. Every field was read
/// from guest memory exactly once; later guest writes to the table change nothing here.
///
/// The buffers' host addresses point into the `MemoryMap` of the queue the chain came
/// from, and the chain holds no reference to it (a reference made every copy of a chain
/// a retain and a release: ~10 % of a net worker's instructions). Whoever keeps a chain
/// past the life of that queue value keeps its map too (`Virtqueue.memory`), as the net
/// worker's RX cache does.
public struct DescriptorChain: RandomAccessCollection {
    /// Descriptor table index of the chain's head: what `addUsed(head:length:)` returns.
    public internal(set) var head: UInt16
    public internal(set) var buffers = DescriptorList()
    /// Number of leading device-readable buffers.
    public internal(set) var readableCount = 0
    /// Total bytes of readable / writable buffers (their sum is < 2^32).
    public internal(set) var readableLength: UInt32 = 0
    public internal(set) var writableLength: UInt32 = 0
    /// An empty chain, for `Virtqueue.popAvailable(into:)` to fill in place.
    public init() {
        head = 0
    }

    /// Empties the chain for reuse as head `head` (a spill array keeps its capacity).
    @inline(__always)
    mutating func reset(head: UInt16) {
        self.head = head
        buffers.removeAll()
        readableCount = 0
        readableLength = 0
        writableLength = 0
    }

    public var startIndex: Int { buffers.startIndex }
    public var endIndex: Int { buffers.endIndex }
    public subscript(position: Int) -> DescriptorBuffer { buffers[position] }

    /// Number of trailing device-writable buffers.
    public var writableCount: Int { buffers.count - readableCount }
    /// Positions of the readable / writable buffers in `buffers`.
    @usableFromInline var readableRange: Range<Int> { 0..<readableCount }
    @usableFromInline var writableRange: Range<Int> { readableCount..<buffers.count }

    /// Driver→device buffers.
    public var readable: Slice<DescriptorList> { buffers[..<readableCount] }
    /// Device→driver buffers.
    public var writable: Slice<DescriptorList> { buffers[readableCount...] }
}

/// One descriptor, each field loaded exactly once (struct virtq_desc, 2.7.5).
struct RawDescriptor {
    let address: UInt64
    let length: UInt32
    let flags: DescriptorFlags
    let next: UInt16

    static let size = 16

    init(at p: UnsafeRawPointer) {
        address = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        length = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        flags = DescriptorFlags(rawValue: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt16.self)))
        next = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
    }
}

/// Walks a chain once, checking each spec rule as it goes, appending to a chain the
/// caller owns (filled in place: each copy of a ~150-byte chain is a move through
/// memcpy, and returning one by value cost three of them).
struct ChainParser {
    /// Queue size N: direct table size and the limit on buffers per chain.
    let queueSize: UInt16
    /// Where buffers and indirect tables must lie; the queue holds it during the parse
    /// (unretained: a retain and a release per buffer were a tenth of the walk).
    let memory: Unmanaged<MemoryMap>
    var readableLength: UInt64 = 0
    var writableLength: UInt64 = 0

    /// Fills `chain` (emptied first) with the chain at `head`. `table` points at the
    /// validated descriptor table of `queueSize` entries.
    static func parse(into chain: inout DescriptorChain, head: UInt16, table: UnsafeRawPointer, queueSize: UInt16,
                      memory: MemoryMap) throws(DescriptorChainError) {
        chain.reset(head: head)
        var parser = ChainParser(queueSize: queueSize, memory: .passUnretained(memory))
        if let error = parser.walk(&chain, head: head, table: table) { throw error }
        chain.readableLength = UInt32(parser.readableLength)
        chain.writableLength = UInt32(parser.writableLength)
    }

    mutating func walk(_ chain: inout DescriptorChain, head: UInt16, table: UnsafeRawPointer) -> DescriptorChainError? {
        let tableSize = UInt32(queueSize)
        // The ttl is the table size: a chain can visit each descriptor at most once,
        // so more visits than entries means `next` loops (2.7.5.2).
        var ttl = tableSize
        var index = head
        while true {
            guard UInt32(index) < tableSize else { return .indexOutOfRange(index: index, tableSize: tableSize) }
            guard ttl > 0 else { return .loop }
            ttl -= 1
            let d = RawDescriptor(at: table + Int(index) * RawDescriptor.size)
            if d.flags.contains(.indirect) {
                // Zero or more direct descriptors may precede one indirect one, which
                // ends the direct chain (2.7.5.3.2); NEXT with it is forbidden (2.7.5.3.1).
                guard !d.flags.contains(.next) else { return .indirectWithNext }
                return walkIndirect(&chain, d)
            }
            if let error = append(&chain, d) { return error }
            guard d.flags.contains(.next) else { return nil }
            index = d.next
        }
    }

    /// Follows an indirect table (2.7.5.3). Its WRITE flag is ignored (2.7.5.3.2).
    mutating func walkIndirect(_ chain: inout DescriptorChain, _ d: RawDescriptor) -> DescriptorChainError? {
        // The table holds len/16 descriptors (2.7.5.3): len must be a non-zero multiple of 16.
        guard d.length > 0, d.length % UInt32(RawDescriptor.size) == 0 else { return .indirectBadLength(d.length) }
        let tableAddress = GuestAddress(d.address)
        guard let table = (memory._withUnsafeGuaranteedRef { try? $0.pointer(at: tableAddress, length: UInt64(d.length)) }) else {
            return .indirectOutOfMemory(tableAddress, length: d.length)
        }
        // Entries addressable by a 16-bit `next`; larger tables would exceed the
        // queue-size limit anyway (checked per buffer in `append`).
        let count = min(d.length / UInt32(RawDescriptor.size), UInt32(UInt16.max) + 1)
        var ttl = count
        var index: UInt16 = 0
        while true {
            guard UInt32(index) < count else { return .indexOutOfRange(index: index, tableSize: count) }
            guard ttl > 0 else { return .loop }
            ttl -= 1
            let e = RawDescriptor(at: table + Int(index) * RawDescriptor.size)
            // Only one table per chain (2.7.5.3.1).
            guard !e.flags.contains(.indirect) else { return .indirectNested }
            if let error = append(&chain, e) { return error }
            guard e.flags.contains(.next) else { return nil }
            index = e.next
        }
    }

    mutating func append(_ chain: inout DescriptorChain, _ d: RawDescriptor) -> DescriptorChainError? {
        let count = chain.buffers.count
        // A chain holds at most queue-size buffers (2.7.5.3.1).
        guard count < Int(queueSize) else { return .chainTooLong(limit: queueSize) }
        let writable = d.flags.contains(.write)
        // Writable buffers come after all readable ones (2.7.4.2).
        if !writable, chain.readableCount < count { return .readableAfterWritable(position: count) }
        // At most 2^32 - 1 bytes in total (2.7.5.2), so totals fit the used ring's le32 len.
        guard readableLength + writableLength + UInt64(d.length) <= UInt64(UInt32.max) else { return .lengthOverflow }
        let address = GuestAddress(d.address)
        // Every buffer must be guest memory, wholly inside one region.
        guard let host = (memory._withUnsafeGuaranteedRef { try? $0.pointer(at: address, length: UInt64(d.length)) }) else {
            return .bufferOutOfMemory(address, length: d.length)
        }
        if writable { writableLength += UInt64(d.length) } else { readableLength += UInt64(d.length); chain.readableCount += 1 }
        chain.buffers.append(DescriptorBuffer(address: address, length: d.length, writable: writable, host: host))
        return nil
    }
}
