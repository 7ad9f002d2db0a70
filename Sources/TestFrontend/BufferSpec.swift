/// One descriptor of a chain to submit, as the driver sees it: bytes the device reads
/// (driver → device) or room the device writes (device → driver).
public enum BufferSpec: Equatable, Sendable {
    /// A device-readable buffer holding these bytes.
    case readable([UInt8])
    /// A device-writable buffer of this many bytes (zero-filled before submission).
    case writable(UInt32)

    public var length: UInt32 {
        switch self {
        case let .readable(bytes): return UInt32(bytes.count)
        case let .writable(length): return length
        }
    }

    public var isWritable: Bool {
        if case .writable = self { return true }
        return false
    }
}

/// A chain the frontend has made available: its head and the guest buffers behind each
/// descriptor, in chain order. The buffers stay allocated until `release(_:)`.
public struct Submission: Equatable, Sendable {
    public let queue: Int
    public let head: UInt16
    public let buffers: [GuestBuffer]
    /// Which of `buffers` are device-writable.
    public let writable: [Bool]
    /// The indirect table, if the chain was submitted indirectly.
    public let indirectTable: GuestBuffer?
    /// Descriptor-table slots the chain occupies (returned to the ring on completion).
    let descriptors: [UInt16]
}

/// One used-ring entry matched with what was submitted under that head.
public struct Completion: Equatable, Sendable {
    public let submission: Submission
    /// used.ring[].len: bytes the device says it wrote into the writable buffers.
    public let length: UInt32
    public var head: UInt16 { submission.head }
}

/// One used-ring element {id, len} of a raw head (`waitForUsedRaw`).
public struct UsedElement: Equatable, Sendable {
    public let head: UInt16
    /// used.ring[].len: bytes the device says it wrote into the writable buffers.
    public let length: UInt32

    public init(head: UInt16, length: UInt32) {
        self.head = head
        self.length = length
    }
}
