import CShim
import Glibc
import Testing

/// A host process's end of a Unix stream socket (a Firecracker-style vsock client or a
/// `<uds_path>_P` listener's accepted peer), with poll-guarded reads.
final class HostPeer {
    let fd: CInt
    init(fd: CInt) { self.fd = fd }

    static func connect(_ path: String) throws -> HostPeer {
        let fd = volt_unix_connect(path)
        guard fd >= 0 else { throw HostPeerError("connect \(path): errno \(-fd)") }
        return HostPeer(fd: fd)
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }
    func send(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { return }
            done += n
        }
    }

    /// Waits for input; false on timeout.
    func readable(timeout ms: Int32 = 5000) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, ms) == 1
    }

    /// Exactly `count` bytes, or fewer if the peer closes or nothing comes in time.
    func read(_ count: Int, timeout: Int32 = 5000) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            guard readable(timeout: timeout) else { break }
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, count - out.count)) }
            if n <= 0 { break }
            out += buf[..<n]
        }
        return out
    }

    /// One line (through its newline), or what came before EOF / the timeout.
    func readLine(timeout: Int32 = 5000) -> String {
        var out: [UInt8] = []
        var b: UInt8 = 0
        while out.last != UInt8(ascii: "\n"), out.count < 256 {
            guard readable(timeout: timeout), Glibc.read(fd, &b, 1) == 1 else { break }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// True once the peer closed (EOF or reset) within the timeout.
    func closedByPeer(timeout: Int32 = 5000) -> Bool {
        var b = [UInt8](repeating: 0, count: 4096)
        while readable(timeout: timeout) {
            let n = b.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return true }
        }
        return false
    }
}

struct HostPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A host listener on `<uds_path>_P`.
final class HostListenerSocket {
    let fd: CInt
    let path: String
    init(_ path: String) throws {
        self.path = path
        fd = volt_unix_listen(path, 64)
        guard fd >= 0 else { throw HostPeerError("listen \(path): errno \(-fd)") }
    }
    deinit { close(fd); unlink(path) }

    func accept(timeout: Int32 = 5000) -> HostPeer? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeout) == 1 else { return nil }
        let c = volt_unix_accept(fd)
        return c >= 0 ? HostPeer(fd: c) : nil
    }
}
