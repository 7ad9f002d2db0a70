import VirtioCore

/// A virtio-blk request as a driver builds it (virtio 1.2, 5.2.6): a 16-byte
/// device-readable header {le32 type, le32 reserved, le64 sector}, the data buffers,
/// and one device-writable status byte at the end.
public struct VirtioBlockRequest: Equatable, Sendable {
    public static let sectorSize = Int(BlockLayout.sectorSize)
    public static let headerSize = BlockLayout.headerSize
    /// GET_ID returns up to 20 bytes of serial number.
    public static let idSize = UInt32(BlockLayout.idBytes)

    public typealias Kind = BlockRequestType

    /// One {le64 sector, le32 num_sectors, le32 flags} segment of DISCARD / WRITE_ZEROES.
    public struct Segment: Equatable, Sendable {
        public static let size = BlockLayout.segmentSize
        /// VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP.
        public static let unmapFlag = BlockLayout.unmapFlag
        public var sector: UInt64
        public var count: UInt32
        public var flags: UInt32

        public init(sector: UInt64, count: UInt32, flags: UInt32 = 0) {
            self.sector = sector
            self.count = count
            self.flags = flags
        }
    }

    public var kind: Kind
    public var sector: UInt64
    /// The data part of the chain, between header and status.
    public var data: [BufferSpec]

    public init(kind: Kind, sector: UInt64 = 0, data: [BufferSpec] = []) {
        self.kind = kind
        self.sector = sector
        self.data = data
    }

    /// IN: `sectors` sectors from `sector` into one writable buffer (or `segments`
    /// buffers splitting it evenly, to test scatter-gather).
    public static func read(sector: UInt64, sectors: Int = 1, segments: Int = 1) -> VirtioBlockRequest {
        let total = sectors * sectorSize
        let pieces = max(1, min(segments, total))
        let lengths = (0..<pieces).map { i in total / pieces + (i < total % pieces ? 1 : 0) }
        return VirtioBlockRequest(kind: .in, sector: sector, data: lengths.map { .writable(UInt32($0)) })
    }

    /// OUT: `bytes` (a multiple of 512) written from `sector`.
    public static func write(sector: UInt64, _ bytes: [UInt8]) -> VirtioBlockRequest {
        VirtioBlockRequest(kind: .out, sector: sector, data: [.readable(bytes)])
    }

    public static let flush = VirtioBlockRequest(kind: .flush)

    public static let getID = VirtioBlockRequest(kind: .getID, data: [.writable(idSize)])

    public static func discard(_ segments: [Segment]) -> VirtioBlockRequest {
        VirtioBlockRequest(kind: .discard, data: [.readable(encode(segments))])
    }

    public static func writeZeroes(_ segments: [Segment]) -> VirtioBlockRequest {
        VirtioBlockRequest(kind: .writeZeroes, data: [.readable(encode(segments))])
    }

    public var header: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(kind.rawValue)
        bytes.appendLittleEndian(UInt32(0))
        bytes.appendLittleEndian(sector)
        return bytes
    }

    /// Header, data, status: the chain to submit.
    public var chain: [BufferSpec] { [.readable(header)] + data + [.writable(1)] }

    private static func encode(_ segments: [Segment]) -> [UInt8] {
        var bytes: [UInt8] = []
        for s in segments {
            bytes.appendLittleEndian(s.sector)
            bytes.appendLittleEndian(s.count)
            bytes.appendLittleEndian(s.flags)
        }
        return bytes
    }
}

/// The status byte a virtio-blk device writes last (5.2.6).
public enum VirtioBlockStatus: Equatable, Sendable {
    case ok
    case ioError
    case unsupported
    /// Any other value: a device bug.
    case other(UInt8)

    public init(_ byte: UInt8) {
        switch byte {
        case 0: self = .ok
        case 1: self = .ioError
        case 2: self = .unsupported
        default: self = .other(byte)
        }
    }
}

/// A completed block request: its status and the bytes of its writable data buffers.
public struct VirtioBlockResult: Equatable, Sendable {
    public let status: VirtioBlockStatus
    /// Data the device wrote (IN, GET_ID), the writable buffers concatenated.
    public let data: [UInt8]
    /// used.len as the device reported it (data written + 1 for the status byte).
    public let usedLength: UInt32
}
