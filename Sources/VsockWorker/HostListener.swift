import CShim
import Glibc

/// Firecracker's host-side handshake line: a host process connected to `uds_path`
/// writes `CONNECT <port>\n` (port in decimal) before any data.
enum ConnectLine {
    /// Longer than any valid line ("CONNECT 4294967295\n" is 19 bytes).
    static let maxLength = 32

    enum Parse: Equatable {
        case needMore
        case port(UInt32)
        case invalid(String)
    }

    /// Parses what was read so far (without anything after the newline).
    static func parse(_ bytes: [UInt8]) -> Parse {
        let prefix = Array("CONNECT ".utf8)
        // Refuse garbage as soon as it differs from the prefix: no need to wait for more.
        for (i, b) in bytes.prefix(prefix.count).enumerated() where b != prefix[i] {
            return .invalid("the line does not start with 'CONNECT '")
        }
        guard let nl = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= maxLength ? .invalid("no newline within \(maxLength) bytes") : .needMore
        }
        guard nl > prefix.count else { return .invalid("no port after 'CONNECT '") }
        let digits = bytes[prefix.count..<nl]
        guard digits.count <= 10, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let port = UInt32(String(decoding: digits, as: UTF8.self)) else {
            return .invalid("the port is not a decimal number up to 4294967295")
        }
        return .port(port)
    }
}

/// A host process that connected to `uds_path` and has not finished its CONNECT line.
struct PendingHostConnection {
    let fd: CInt
    var line: [UInt8] = []
    /// Monotonic ns by which the line must be complete.
    let deadline: UInt64

    /// Reads what the peer sent, a byte at a time so nothing after the newline (stream
    /// data for the guest) is consumed. `.needMore` when the socket has nothing yet.
    mutating func readLine() -> ConnectLine.Parse {
        var byte: UInt8 = 0
        while line.count < ConnectLine.maxLength {
            let n = read(fd, &byte, 1)
            if n == 1 {
                line.append(byte)
                if byte == UInt8(ascii: "\n") { break }
                if case .invalid = ConnectLine.parse(line) { break }
                continue
            }
            if n == 0 { return .invalid("the peer closed before its CONNECT line") }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return ConnectLine.parse(line) }
            return .invalid("read failed: errno \(e)")
        }
        return ConnectLine.parse(line)
    }
}

/// Host ports for host-initiated connections, as Firecracker gives them: from
/// [2^30, 2^31), in order, skipping ports in use, wrapping around.
struct HostPortAllocator {
    static let range: Range<UInt32> = (1 << 30)..<(1 << 31)
    private var next = range.lowerBound

    mutating func allocate(inUse: (UInt32) -> Bool) -> UInt32? {
        for _ in 0..<4096 {
            let p = next
            next = next + 1 == Self.range.upperBound ? Self.range.lowerBound : next + 1
            if !inUse(p) { return p }
        }
        return nil
    }
}
