/// Bounds-checked little-endian reads from bytes that came from a file the user named.
/// Every read returns nil instead of trapping, and offsets are UInt64 so that values
/// taken straight from a header can be passed in without a conversion that could trap.
struct UntrustedBytes {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: UInt64 { UInt64(bytes.count) }

    /// True when `length` bytes starting at `offset` lie inside the buffer (overflow-safe).
    func contains(offset: UInt64, length: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= count
    }

    func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: UInt64) -> T? {
        let size = UInt64(MemoryLayout<T>.size)
        guard contains(offset: offset, length: size) else { return nil }
        var value: T = 0
        let base = Int(offset)
        for i in 0..<Int(size) { value |= T(bytes[base + i]) << (8 * i) }
        return value
    }

    func u8(_ offset: UInt64) -> UInt8? { integer(UInt8.self, at: offset) }
    func u16(_ offset: UInt64) -> UInt16? { integer(UInt16.self, at: offset) }
    func u32(_ offset: UInt64) -> UInt32? { integer(UInt32.self, at: offset) }
    func u64(_ offset: UInt64) -> UInt64? { integer(UInt64.self, at: offset) }

    func slice(offset: UInt64, length: UInt64) -> ArraySlice<UInt8>? {
        guard contains(offset: offset, length: length) else { return nil }
        return bytes[Int(offset)..<Int(offset + length)]
    }

    func hasPrefix(_ magic: [UInt8], at offset: UInt64 = 0) -> Bool {
        guard let s = slice(offset: offset, length: UInt64(magic.count)) else { return false }
        return s.elementsEqual(magic)
    }
}

/// "0x1f00" for messages; loaders print addresses in hex like the specs do.
func loaderHex(_ value: some BinaryInteger) -> String {
    "0x" + String(value, radix: 16)
}

/// "18.2 MiB" / "512 KiB" / "100 bytes" for messages.
func loaderSize(_ bytes: UInt64) -> String {
    if bytes >= Layout.MiB {
        let tenths = (bytes * 10 + Layout.MiB / 2) / Layout.MiB
        return "\(tenths / 10).\(tenths % 10) MiB"
    }
    if bytes >= Layout.KiB { return "\(bytes / Layout.KiB) KiB" }
    return "\(bytes) bytes"
}
