/// Fixed-layout field encoding for vhost-user payloads. The spec says "machine native
/// byte order"; volt-vmm is x86_64-only, so native is little-endian and we write it so.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
}

/// Sequential reader over a payload whose total size the caller has already checked.
/// Reading past the end yields zeros instead of trapping (defence in depth only).
struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: [UInt8]) { self.bytes = bytes[...]; offset = bytes.startIndex }
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes; offset = bytes.startIndex }

    private mutating func le(_ n: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<n {
            let at = offset + i
            let b = at < bytes.endIndex ? bytes[at] : 0
            v |= UInt64(b) << (8 * UInt64(i))
        }
        offset += n
        return v
    }

    mutating func u16() -> UInt16 { UInt16(truncatingIfNeeded: le(2)) }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: le(4)) }
    mutating func u64() -> UInt64 { le(8) }
    mutating func skip(_ n: Int) { offset += n }
    mutating func rest() -> [UInt8] {
        let start = min(offset, bytes.endIndex)
        offset = bytes.endIndex
        return Array(bytes[start...])
    }
}
