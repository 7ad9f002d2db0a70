import FoundationEssentials
import Glibc
import SystemPackage

/// The snapshot state file: a 32-byte header — "VOLTSNAP", the format version, the
/// payload's length and its FNV-1a checksum — then the state as JSON. Read back only
/// whole, checked, and of this version; written to a temporary name and renamed into
/// place, so a failed snapshot leaves nothing behind and a reader never sees half a file.
enum SnapshotFile {
    static let magic = Array("VOLTSNAP".utf8)
    static let version: UInt32 = 1
    static let headerSize = 32
    /// A state file is tens of KiB per vCPU; anything this large is not ours.
    static let maxPayload = 64 << 20

    static func encode(_ state: SnapshotState) throws(SnapshotError) -> [UInt8] {
        let payload: [UInt8]
        do { payload = Array(try JSONEncoder().encode(state)) } catch { throw .failed("encoding the state: \(error)") }
        var header = magic
        appendLE(&header, version)
        appendLE(&header, UInt32(0))
        appendLE(&header, UInt64(payload.count))
        appendLE(&header, FNV1a.hash(payload))
        return header + payload
    }

    static func decode(_ bytes: [UInt8], path: String) throws(SnapshotError) -> SnapshotState {
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic else {
            if bytes.count < headerSize, magic.starts(with: bytes.prefix(8)) && !bytes.isEmpty {
                throw .truncated(path: path, bytes: bytes.count, expected: headerSize)
            }
            throw .notASnapshot(path: path)
        }
        let found = readLE(bytes, 8, UInt32.self)
        guard found == version else { throw .version(path: path, found: found, supported: version) }
        let length = readLE(bytes, 16, UInt64.self)
        guard length <= UInt64(maxPayload) else { throw .invalid("a payload of \(length) bytes") }
        let expected = headerSize + Int(length)
        guard bytes.count >= expected else { throw .truncated(path: path, bytes: bytes.count, expected: expected) }
        guard bytes.count == expected else { throw .invalid("\(bytes.count - expected) bytes after the payload") }
        let payload = bytes[headerSize...]
        guard FNV1a.hash(payload) == readLE(bytes, 24, UInt64.self) else { throw .checksum(path: path) }
        let state: SnapshotState
        do { state = try JSONDecoder().decode(SnapshotState.self, from: Data(payload)) } catch {
            throw .invalid("\(error)")
        }
        try state.validate()
        return state
    }

    static func read(path: String) throws(SnapshotError) -> SnapshotState {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .file(path: path, operation: "open", Errno(rawValue: errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .file(path: path, operation: "fstat", Errno(rawValue: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notASnapshot(path: path) }
        guard st.st_size <= headerSize + maxPayload else { throw .invalid("a state file of \(st.st_size) bytes") }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n < 0 { throw .file(path: path, operation: "read", Errno(rawValue: errno)) }
                break
            }
            done += n
        }
        return try decode(Array(bytes[0..<done]), path: path)
    }

    private static func appendLE<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func readLE<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, _: T.Type) -> T {
        var value: T = 0
        for i in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + i]) }
        return value
    }
}

/// For `firecracker --describe-snapshot`: the format version a state file was written in.
public enum SnapshotFormat {
    public static func version(ofStateFile path: String) throws(SnapshotError) -> UInt32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .file(path: path, operation: "open", Errno(rawValue: errno)) }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: SnapshotFile.headerSize)
        let n = header.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n == SnapshotFile.headerSize, Array(header[0..<8]) == SnapshotFile.magic else { throw .notASnapshot(path: path) }
        return UInt32(header[8]) | UInt32(header[9]) << 8 | UInt32(header[10]) << 16 | UInt32(header[11]) << 24
    }
}
