import VirtioCore

/// A virtio-vsock packet as the guest driver sees it (virtio 1.2, 5.10.6): the 44-byte
/// little-endian header and the payload. Written independently of the worker's codec,
/// so tests check one against the other.
public struct VsockPacket: Equatable, Sendable {
    public static let headerSize = 44
    public enum Op {
        public static let request: UInt16 = 1, response: UInt16 = 2, rst: UInt16 = 3, shutdown: UInt16 = 4
        public static let rw: UInt16 = 5, creditUpdate: UInt16 = 6, creditRequest: UInt16 = 7
    }

    public var srcCID: UInt64, dstCID: UInt64
    public var srcPort: UInt32, dstPort: UInt32
    public var len: UInt32
    public var type: UInt16 = 1
    public var op: UInt16
    public var flags: UInt32 = 0
    public var bufAlloc: UInt32, fwdCnt: UInt32
    public var payload: [UInt8] = []

    public init(srcCID: UInt64, dstCID: UInt64 = 2, srcPort: UInt32, dstPort: UInt32, op: UInt16, flags: UInt32 = 0,
                bufAlloc: UInt32 = 256 * 1024, fwdCnt: UInt32 = 0, payload: [UInt8] = [], len: UInt32? = nil) {
        self.srcCID = srcCID; self.dstCID = dstCID; self.srcPort = srcPort; self.dstPort = dstPort; self.op = op
        self.flags = flags; self.bufAlloc = bufAlloc; self.fwdCnt = fwdCnt; self.payload = payload
        self.len = len ?? UInt32(payload.count)
    }

    /// Header then payload.
    public var bytes: [UInt8] {
        var b: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        put(srcCID); put(dstCID); put(srcPort); put(dstPort); put(len); put(type); put(op); put(flags); put(bufAlloc); put(fwdCnt)
        return b + payload
    }

    /// Parses what the device wrote into an RX buffer (`used` bytes of it).
    public init?(device bytes: [UInt8]) {
        guard bytes.count >= Self.headerSize else { return nil }
        func get<T: FixedWidthInteger>(_ o: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: T.self)) }
        }
        srcCID = get(0, UInt64.self); dstCID = get(8, UInt64.self); srcPort = get(16, UInt32.self); dstPort = get(20, UInt32.self)
        len = get(24, UInt32.self); type = get(28, UInt16.self); op = get(30, UInt16.self); flags = get(32, UInt32.self)
        bufAlloc = get(36, UInt32.self); fwdCnt = get(40, UInt32.self)
        payload = Array(bytes[Self.headerSize...])
    }
}

/// The guest's virtio-vsock driver over a started `VhostUserTestFrontend` with queues
/// RX 0, TX 1 (and event 2): keeps RX buffers posted, sends packets, collects what the
/// device delivers.
public final class VsockDriver {
    public let fe: VhostUserTestFrontend
    public let guestCID: UInt64
    public let rxBufferSize: UInt32
    private var received: [VsockPacket] = []

    public init(_ fe: VhostUserTestFrontend, guestCID: UInt64, rxBuffers: Int = 32, rxBufferSize: UInt32 = 44 + 4096) throws(TestFrontendError) {
        self.fe = fe
        self.guestCID = guestCID
        self.rxBufferSize = rxBufferSize
        try postRX(rxBuffers)
    }

    /// Offers `count` more RX buffers and kicks.
    public func postRX(_ count: Int) throws(TestFrontendError) {
        for _ in 0..<count { try fe.submit(queue: 0, [.writable(rxBufferSize)]) }
        try fe.kick(queue: 0)
    }

    /// Sends one packet (as a single readable buffer, or header and payload apart) and
    /// waits until the device has taken it.
    public func send(_ p: VsockPacket, split: Bool = false) throws(TestFrontendError) {
        let b = p.bytes
        let chain: [BufferSpec] = split && b.count > VsockPacket.headerSize
            ? [.readable(Array(b[..<VsockPacket.headerSize])), .readable(Array(b[VsockPacket.headerSize...]))] : [.readable(b)]
        try sendRaw(chain)
    }

    public func sendRaw(_ chain: [BufferSpec]) throws(TestFrontendError) {
        let s = try fe.submit(queue: 1, chain)
        try fe.kick(queue: 1)
        fe.release(try fe.waitForCompletion(of: s))
    }

    /// The next packet the device delivers (an RX buffer is re-posted for each).
    public func receive(timeout: Double = 5) throws(TestFrontendError) -> VsockPacket {
        if received.isEmpty {
            for c in try fe.waitForUsed(queue: 0, timeout: timeout) {
                let bytes = try fe.read(c.submission.buffers[0], count: Int(c.length))
                fe.release(c)
                if let p = VsockPacket(device: bytes) { received.append(p) }
                try fe.submit(queue: 0, [.writable(rxBufferSize)])
            }
            try fe.kick(queue: 0)
        }
        guard !received.isEmpty else { throw .invalidArgument("the device used an RX buffer without a header") }
        return received.removeFirst()
    }

    /// Packets until one with `op` for guest port `port` arrives (others are returned too).
    public func receive(op: UInt16, port: UInt32? = nil, timeout: Double = 5) throws(TestFrontendError) -> (VsockPacket, [VsockPacket]) {
        var others: [VsockPacket] = []
        while true {
            let p = try receive(timeout: timeout)
            if p.op == op && (port == nil || p.dstPort == port) { return (p, others) }
            others.append(p)
        }
    }
}
