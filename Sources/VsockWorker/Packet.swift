/// struct virtio_vsock_hdr (virtio 1.2, 5.10.6): 44 little-endian bytes before every
/// packet's payload, on both queues.
struct VsockHeader: Equatable {
    static let size = 44
    /// The host's CID (VMADDR_CID_HOST): every peer of the guest is "the host".
    static let hostCID: UInt64 = 2
    /// Largest payload a packet carries (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
    static let maxPayload: UInt32 = 64 * 1024

    var srcCID: UInt64 = 0
    var dstCID: UInt64 = 0
    var srcPort: UInt32 = 0
    var dstPort: UInt32 = 0
    var len: UInt32 = 0
    var type: UInt16 = VsockType.stream
    var op: UInt16 = 0
    var flags: UInt32 = 0
    var bufAlloc: UInt32 = 0
    var fwdCnt: UInt32 = 0

    /// Decodes the first 44 bytes of `bytes` (nil if shorter).
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        srcCID = u64(0); dstCID = u64(8); srcPort = u32(16); dstPort = u32(20); len = u32(24)
        type = u16(28); op = u16(30); flags = u32(32); bufAlloc = u32(36); fwdCnt = u32(40)
    }

    init(srcCID: UInt64, dstCID: UInt64, srcPort: UInt32, dstPort: UInt32, op: UInt16, len: UInt32 = 0,
         flags: UInt32 = 0, bufAlloc: UInt32 = 0, fwdCnt: UInt32 = 0) {
        self.srcCID = srcCID; self.dstCID = dstCID; self.srcPort = srcPort; self.dstPort = dstPort
        self.op = op; self.len = len; self.flags = flags; self.bufAlloc = bufAlloc; self.fwdCnt = fwdCnt
    }

    /// Writes the 44 bytes into `out` (at least `size` long).
    func encode(into out: UnsafeMutableRawBufferPointer) {
        func put<T: FixedWidthInteger>(_ v: T, _ o: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: o, as: T.self) }
        put(srcCID, 0); put(dstCID, 8); put(srcPort, 16); put(dstPort, 20); put(len, 24)
        put(type, 28); put(op, 30); put(flags, 32); put(bufAlloc, 36); put(fwdCnt, 40)
    }

    var bytes: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.withUnsafeMutableBytes { encode(into: $0) }
        return b
    }

    /// The connection a guest packet belongs to: (host port, guest port).
    var key: ConnectionKey { ConnectionKey(local: dstPort, peer: srcPort) }
}

enum VsockType {
    static let stream: UInt16 = 1
    static let seqpacket: UInt16 = 2
}

/// VIRTIO_VSOCK_OP_* (5.10.6).
enum VsockOp {
    static let request: UInt16 = 1
    static let response: UInt16 = 2
    static let rst: UInt16 = 3
    static let shutdown: UInt16 = 4
    static let rw: UInt16 = 5
    static let creditUpdate: UInt16 = 6
    static let creditRequest: UInt16 = 7
}

/// VIRTIO_VSOCK_SHUTDOWN_* flags of an OP_SHUTDOWN.
enum ShutdownFlags {
    /// The sender will receive no more data.
    static let receive: UInt32 = 1
    /// The sender will send no more data.
    static let send: UInt32 = 2
    static let both: UInt32 = 3
}

/// A connection's identity on this device: the host-side port and the guest's port
/// (the CIDs are fixed: the guest's and 2).
struct ConnectionKey: Hashable {
    var local: UInt32
    var peer: UInt32
}

/// Why a guest packet was refused. Each ends the connection it names (RST), or, when
/// none can be named, the packet alone; the device keeps serving.
enum VsockPacketError: Error, Equatable, CustomStringConvertible {
    /// The chain has fewer readable bytes than a header.
    case shortHeader(readable: UInt32)
    /// `len` says more payload than the chain holds, or more than 64 KiB.
    case badLength(len: UInt32, available: UInt32)
    case wrongSourceCID(UInt64, expected: UInt64)
    case wrongDestinationCID(UInt64)
    case unsupportedType(UInt16)
    case unknownOp(UInt16)
    /// A payload on a packet other than OP_RW.
    case payloadOnControl(op: UInt16, len: UInt32)

    var description: String {
        switch self {
        case let .shortHeader(n): return "packet of \(n) readable bytes, shorter than the 44-byte header"
        case let .badLength(len, avail): return "header len \(len) with \(avail) payload bytes in the chain (at most 65536)"
        case let .wrongSourceCID(c, e): return "source CID \(c), the guest's is \(e)"
        case let .wrongDestinationCID(c): return "destination CID \(c), only the host (2) is reachable"
        case let .unsupportedType(t): return "socket type \(t), only stream (1) is supported"
        case let .unknownOp(op): return "unknown op \(op)"
        case let .payloadOnControl(op, len): return "op \(op) with a \(len)-byte payload"
        }
    }
}

extension VsockHeader {
    /// Checks a packet the guest sent on the TX queue: `readable` bytes in the chain
    /// (header included), `guestCID` the device's. Cheap checks only; the connection's
    /// state decides the rest.
    func validate(readable: UInt32, guestCID: UInt64) throws(VsockPacketError) {
        guard readable >= UInt32(Self.size) else { throw .shortHeader(readable: readable) }
        guard srcCID == guestCID else { throw .wrongSourceCID(srcCID, expected: guestCID) }
        guard dstCID == Self.hostCID else { throw .wrongDestinationCID(dstCID) }
        guard type == VsockType.stream else { throw .unsupportedType(type) }
        guard (VsockOp.request...VsockOp.creditRequest).contains(op) else { throw .unknownOp(op) }
        let available = readable - UInt32(Self.size)
        guard len <= Self.maxPayload, len <= available else { throw .badLength(len: len, available: available) }
        guard op == VsockOp.rw || len == 0 else { throw .payloadOnControl(op: op, len: len) }
    }
}
