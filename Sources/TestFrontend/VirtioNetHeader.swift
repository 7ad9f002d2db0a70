/// struct virtio_net_hdr_v1 (virtio 1.2, 5.1.6): 12 bytes in front of every frame, on
/// TX and RX, whenever VIRTIO_F_VERSION_1 is negotiated.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 12
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM.
    public static let needsChecksum: UInt8 = 1
    /// VIRTIO_NET_HDR_F_DATA_VALID.
    public static let dataValid: UInt8 = 2
    public static let gsoNone: UInt8 = 0

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = Self.gsoNone
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0
    /// RX: how many buffers this packet spans (MRG_RXBUF); the driver sets 0 on TX.
    public var numBuffers: UInt16 = 0

    public init(flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0, numBuffers: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
        self.numBuffers = numBuffers
    }

    public var bytes: [UInt8] {
        var b: [UInt8] = [flags, gsoType]
        for field in [headerLength, gsoSize, checksumStart, checksumOffset, numBuffers] { b.appendLittleEndian(field) }
        return b
    }

    /// The header at the start of `bytes`, or nil if fewer than 12 bytes.
    public init?(_ bytes: [UInt8]) {
        guard bytes.count >= Self.size else { return nil }
        // In range: 2 + 2 * 4 + 2 <= 12.
        let fields = (0..<5).map { bytes.littleEndian(UInt16.self, at: 2 + 2 * $0) ?? 0 }
        self.init(flags: bytes[0], gsoType: bytes[1], headerLength: fields[0], gsoSize: fields[1],
                  checksumStart: fields[2], checksumOffset: fields[3], numBuffers: fields[4])
    }
}

/// One frame as the device delivered it.
public struct ReceivedPacket: Equatable, Sendable {
    public let header: VirtioNetHeader
    public let frame: [UInt8]
    /// RX buffers it occupied.
    public let buffers: Int
}

/// Turns RX used buffers, in used-ring order, into packets. Without MRG_RXBUF each
/// buffer is one packet. With it, the first buffer's num_buffers says how many
/// buffers (this one included) carry the packet, and the rest follow in order (5.1.6.4).
public struct VirtioNetReceiver: Sendable {
    public let mergeable: Bool
    private var header: VirtioNetHeader?
    private var frame: [UInt8] = []
    private var remaining = 0
    private var taken = 0

    public init(mergeable: Bool) { self.mergeable = mergeable }

    /// True while a packet waits for more buffers.
    public var isPartial: Bool { header != nil }

    /// Adds the used bytes of one RX buffer; returns a packet once it is complete.
    public mutating func add(_ used: [UInt8]) throws(TestFrontendError) -> ReceivedPacket? {
        taken += 1
        if header == nil {
            guard let h = VirtioNetHeader(used) else {
                throw .malformedReply("RX buffer with \(used.count) used bytes, less than the 12-byte header")
            }
            let count = mergeable ? Int(h.numBuffers) : 1
            guard count >= 1 else { throw .malformedReply("num_buffers 0 with MRG_RXBUF") }
            header = h
            frame = Array(used.dropFirst(VirtioNetHeader.size))
            remaining = count - 1
        } else {
            frame += used
            remaining -= 1
        }
        guard remaining == 0, let h = header else { return nil }
        defer { header = nil; frame = []; taken = 0 }
        return ReceivedPacket(header: h, frame: frame, buffers: taken)
    }
}
