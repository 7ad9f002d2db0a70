/// Which part of a split virtqueue (virtio 1.2, 2.7).
public enum RingPart: String, Sendable {
    case descriptorTable = "descriptor table"
    case availableRing = "available ring"
    case usedRing = "used ring"
}

/// A malformed descriptor chain (virtio 1.2, 2.7.5). Each case ends one request.
public enum DescriptorChainError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A descriptor index (head, `next`, or within an indirect table) past the table.
    case indexOutOfRange(index: UInt16, tableSize: UInt32)
    /// More descriptors followed than the table holds: `next` leads in a circle.
    case loop
    /// More buffers than the queue size in one chain (2.7.5.3.1).
    case chainTooLong(limit: UInt16)
    /// Total buffer length above 2^32 - 1 bytes (2.7.5.2).
    case lengthOverflow
    /// INDIRECT set inside an indirect table (2.7.5.3.1).
    case indirectNested
    /// INDIRECT and NEXT set on the same descriptor (2.7.5.3.1).
    case indirectWithNext
    /// Indirect table length 0 or not a multiple of 16 (2.7.5.3).
    case indirectBadLength(UInt32)
    /// The indirect table is not wholly inside one memory region.
    case indirectOutOfMemory(GuestAddress, length: UInt32)
    /// A buffer is not wholly inside one memory region.
    case bufferOutOfMemory(GuestAddress, length: UInt32)
    /// A device-readable buffer after a device-writable one (2.7.4.2).
    case readableAfterWritable(position: Int)

    public var description: String {
        switch self {
        case let .indexOutOfRange(index, tableSize):
            return "descriptor index \(index) is outside a table of \(tableSize) entries"
        case .loop:
            return "descriptor chain loops (more descriptors than the table holds)"
        case let .chainTooLong(limit):
            return "descriptor chain has more than \(limit) buffers (the queue size)"
        case .lengthOverflow:
            return "descriptor chain is longer than 2^32 - 1 bytes in total"
        case .indirectNested:
            return "indirect descriptor inside an indirect table"
        case .indirectWithNext:
            return "descriptor has both INDIRECT and NEXT set"
        case let .indirectBadLength(length):
            return "indirect table length \(length) is zero or not a multiple of 16"
        case let .indirectOutOfMemory(address, length):
            return "indirect table of \(length) bytes at \(address) is outside guest memory"
        case let .bufferOutOfMemory(address, length):
            return "buffer of \(length) bytes at \(address) is outside guest memory"
        case let .readableAfterWritable(position):
            return "device-readable buffer at position \(position) follows a device-writable one"
        }
    }
}

/// A bad ring setup, a broken ring, or a malformed chain.
public enum VirtqueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Queue size not a power of two in 1...32768 (2.7).
    case invalidSize(UInt32)
    /// A ring part's guest address (or its host mapping) is not aligned as 2.7.1 requires.
    case misaligned(RingPart, GuestAddress)
    /// A ring part is not wholly inside one memory region.
    case ringOutOfMemory(RingPart, GuestAddress, length: UInt64)
    /// avail.idx moved more than the queue size past the device's position: the
    /// driver exposed more buffers than the ring holds (2.7.13: the ring can never
    /// hold more than queue size entries). The queue is broken; nothing was consumed.
    case availIndexJump(nextAvail: UInt16, availIndex: UInt16, size: UInt16)
    /// The chain at `head` is malformed; its avail entry was consumed. The device may
    /// return it with `addUsed(head:length: 0)` (when `head` < size) or fail the device.
    case malformedChain(head: UInt16, DescriptorChainError)
    /// The device tried to return a head index past the table.
    case usedHeadOutOfRange(UInt16)
    /// The device staged more used entries than the ring holds without publishing.
    case usedRingOverflow

    public var description: String {
        switch self {
        case let .invalidSize(size):
            return "queue size \(size) is not a power of two in 1...32768"
        case let .misaligned(part, address):
            return "\(part.rawValue) at \(address) is misaligned"
        case let .ringOutOfMemory(part, address, length):
            return "\(part.rawValue) of \(length) bytes at \(address) is outside guest memory"
        case let .availIndexJump(nextAvail, availIndex, size):
            return "avail idx \(availIndex) is more than \(size) entries ahead of \(nextAvail)"
        case let .malformedChain(head, error):
            return "descriptor chain at head \(head): \(error)"
        case let .usedHeadOutOfRange(head):
            return "used head \(head) is outside the descriptor table"
        case .usedRingOverflow:
            return "more used entries staged than the ring holds"
        }
    }
}
