import Glibc
import VirtioCore

// virtio-blk requests (virtio 1.2, 5.2.6): a chain of a 16-byte device-readable header
// {le32 type, le32 reserved, le64 sector}, type-specific data, and one device-writable
// status byte at the very end.

typealias RequestType = BlockRequestType

/// One discard / write-zeroes range.
struct Segment: Equatable, Sendable {
    var sector: UInt64
    var sectors: UInt32
    var flags: UInt32
}

/// A request the device will execute, every field already validated against the chain
/// and the disk. Data stays in the chain: IN and GET_ID fill the first `length` writable
/// bytes, OUT takes `length` readable bytes after the header (iovecs are built on the
/// stack when the request runs, straight over guest memory).
enum BlockOperation {
    case read(offset: UInt64, length: UInt64)
    case write(offset: UInt64, length: UInt64)
    case flush
    case getID(length: Int)
    case discard([Segment])
    case writeZeroes([Segment])
}

/// Why a request failed before any I/O. Each case names the fault; `status` is what
/// the driver sees (IOERR unless the spec asks for UNSUPP).
enum RequestError: Error, Equatable, CustomStringConvertible {
    /// Fewer than 16 device-readable bytes: no complete header (5.2.6).
    case headerTooShort(readable: UInt32)
    /// Data in the wrong direction: device-readable bytes after the header of a request
    /// that returns data, or device-writable bytes before the status byte of one that
    /// carries data to the device.
    case wrongDirection(RequestType)
    /// IN/OUT data not a multiple of 512 bytes (5.2.6.1: the driver MUST NOT).
    case partialSector(length: UInt64)
    /// Sectors past the capacity (or an offset that overflows).
    case outOfRange(sector: UInt64, sectors: UInt64, capacity: UInt64)
    /// OUT, DISCARD or WRITE_ZEROES on a read-only disk (5.2.6.2: IOERR, nothing written).
    case readOnly(RequestType)
    /// A type the device does not implement, or whose feature was not negotiated.
    case unsupportedType(UInt32)
    /// DISCARD / WRITE_ZEROES data empty, not a multiple of 16 bytes, or above the
    /// advertised segment count.
    case badSegmentData(length: UInt32, maxSegments: UInt32)
    /// Unknown segment flags, or UNMAP on a discard (5.2.6.2: UNSUPP).
    case unsupportedFlags(UInt32)
    /// More sectors in one segment than max_discard_sectors / max_write_zeroes_sectors.
    case segmentTooLarge(sectors: UInt32, max: UInt32)

    var status: BlockStatus {
        switch self {
        case .unsupportedType, .unsupportedFlags: return .unsupported
        default: return .ioError
        }
    }

    var description: String {
        switch self {
        case let .headerTooShort(n): return "request header needs 16 device-readable bytes, chain has \(n)"
        case let .wrongDirection(t): return "\(t) request has data buffers in the wrong direction"
        case let .partialSector(n): return "data length \(n) is not a multiple of 512"
        case let .outOfRange(s, n, c): return "sectors \(s)+\(n) past the capacity of \(c)"
        case let .readOnly(t): return "\(t) request on a read-only disk"
        case let .unsupportedType(t): return "unsupported request type \(t)"
        case let .badSegmentData(n, max): return "segment data of \(n) bytes (16 per segment, at most \(max))"
        case let .unsupportedFlags(f): return "unsupported segment flags 0x\(String(f, radix: 16))"
        case let .segmentTooLarge(n, max): return "segment of \(n) sectors, more than \(max)"
        }
    }
}

/// What a parser needs to know about the device.
struct RequestLimits: Sendable {
    var capacity: UInt64
    var readOnly: Bool
    var discard: Bool
    var writeZeroes: Bool
    var maxDiscardSectors: UInt32
    var maxDiscardSegments: UInt32
    var maxWriteZeroesSectors: UInt32
    var maxWriteZeroesSegments: UInt32
}

/// A parsed chain: where its status byte is, and what to do.
struct BlockRequest {
    /// The raw type field (known or not), for metrics.
    let rawType: UInt32
    var type: RequestType? { RequestType(rawValue: rawType) }
    /// Offset of the status byte in the chain's writable part (its last byte).
    let statusOffset: Int
    let operation: Result<BlockOperation, RequestError>

    /// Parses `chain`. Returns nil when the chain has no device-writable byte for the
    /// status: it cannot be answered, only returned with used len 0.
    static func parse(_ chain: DescriptorChain, limits: RequestLimits) -> BlockRequest? {
        guard chain.writableLength >= 1 else { return nil }
        let statusOffset = Int(chain.writableLength) - 1
        // The header is copied once into a stack value, then decoded from the copy.
        var header: (UInt64, UInt64) = (0, 0)
        guard chain.readableLength >= UInt32(BlockLayout.headerSize),
              withUnsafeMutableBytes(of: &header, { chain.copyFromReadable(into: $0) }) == BlockLayout.headerSize
        else {
            // The type is unknowable without a header; report it as "unknown".
            return BlockRequest(rawType: .max, statusOffset: statusOffset,
                                operation: .failure(.headerTooShort(readable: chain.readableLength)))
        }
        let rawType = withUnsafeBytes(of: header) { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        let sector = UInt64(littleEndian: header.1)
        return BlockRequest(rawType: rawType, statusOffset: statusOffset,
                            operation: operation(rawType, sector: sector, chain: chain, limits: limits))
    }

    private static func operation(_ rawType: UInt32, sector: UInt64, chain: DescriptorChain,
                                  limits: RequestLimits) -> Result<BlockOperation, RequestError> {
        guard let type = RequestType(rawValue: rawType) else { return .failure(.unsupportedType(rawType)) }
        // Bytes after the header / before the status byte.
        let readableData = UInt64(chain.readableLength) - UInt64(BlockLayout.headerSize)
        let writableData = UInt64(chain.writableLength) - 1
        switch type {
        case .in, .out:
            if type == .out && limits.readOnly { return .failure(.readOnly(.out)) }
            let length = type == .in ? writableData : readableData
            if (type == .in ? readableData : writableData) != 0 { return .failure(.wrongDirection(type)) }
            guard length % BlockLayout.sectorSize == 0 else { return .failure(.partialSector(length: length)) }
            let sectors = length >> BlockLayout.sectorShift
            guard sector <= limits.capacity, sectors <= limits.capacity - sector else {
                return .failure(.outOfRange(sector: sector, sectors: sectors, capacity: limits.capacity))
            }
            // sector <= capacity < 2^55, so the byte offset cannot overflow.
            let offset = sector << BlockLayout.sectorShift
            return .success(type == .in ? .read(offset: offset, length: length) : .write(offset: offset, length: length))

        case .flush:
            return .success(.flush)

        case .getID:
            if readableData != 0 { return .failure(.wrongDirection(.getID)) }
            let length = Int(min(writableData, UInt64(BlockLayout.idBytes)))
            return .success(.getID(length: length))

        case .discard, .writeZeroes:
            let negotiated = type == .discard ? limits.discard : limits.writeZeroes
            // Read-only first: a write on a read-only disk is an I/O error (5.2.6.2),
            // whether or not the command was negotiated.
            if limits.readOnly { return .failure(.readOnly(type)) }
            guard negotiated else { return .failure(.unsupportedType(rawType)) }
            if writableData != 0 { return .failure(.wrongDirection(type)) }
            let maxSegments = type == .discard ? limits.maxDiscardSegments : limits.maxWriteZeroesSegments
            let maxSectors = type == .discard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors
            let n = UInt32(readableData)
            guard n > 0, n % UInt32(BlockLayout.segmentSize) == 0, n / UInt32(BlockLayout.segmentSize) <= maxSegments,
                  let bytes = chain.readableBytes(offset: BlockLayout.headerSize, count: Int(n))
            else { return .failure(.badSegmentData(length: n, maxSegments: maxSegments)) }
            var segments: [Segment] = []
            segments.reserveCapacity(Int(n) / BlockLayout.segmentSize)
            bytes.withUnsafeBytes { raw in
                for i in stride(from: 0, to: Int(n), by: BlockLayout.segmentSize) {
                    segments.append(Segment(
                        sector: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)),
                        sectors: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i + 8, as: UInt32.self)),
                        flags: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self))))
                }
            }
            for s in segments {
                // 5.2.6.2: UNSUPP for unknown flags, and for UNMAP on a discard.
                let allowed: UInt32 = type == .writeZeroes ? BlockLayout.unmapFlag : 0
                if s.flags & ~allowed != 0 { return .failure(.unsupportedFlags(s.flags)) }
                if s.sectors > maxSectors { return .failure(.segmentTooLarge(sectors: s.sectors, max: maxSectors)) }
                guard s.sector <= limits.capacity, UInt64(s.sectors) <= limits.capacity - s.sector else {
                    return .failure(.outOfRange(sector: s.sector, sectors: UInt64(s.sectors), capacity: limits.capacity))
                }
            }
            return .success(type == .discard ? .discard(segments) : .writeZeroes(segments))
        }
    }
}

/// Cutting iovec arrays (header off the front, status byte off the back).
enum IOVecSlice {
    /// The iovecs covering bytes [skip, skip+length) of `vectors` (fewer bytes if they are shorter).
    static func slice(_ vectors: [iovec], skip: UInt64, length: UInt64) -> [iovec] {
        var result: [iovec] = []
        result.reserveCapacity(vectors.count)
        var toSkip = skip
        var remaining = length
        for v in vectors where remaining > 0 {
            var len = UInt64(v.iov_len)
            var base = v.iov_base
            if toSkip >= len { toSkip -= len; continue }
            if toSkip > 0 {
                base = base.map { $0 + Int(toSkip) }
                len -= toSkip
                toSkip = 0
            }
            let take = min(len, remaining)
            if take > 0 { result.append(iovec(iov_base: base, iov_len: Int(take))) }
            remaining -= take
        }
        return result
    }
}
