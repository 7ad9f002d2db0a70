import Glibc
import SystemPackage

/// A one-request HTTP/1.1 client for the API socket (`volt-vmm ctl`, tests): connects,
/// sends the request with "Connection: close", and reads the answer, framed by the same
/// libhttp-parser in response mode (Content-Length, chunked, or until EOF).
public enum HTTPClient {
    /// Larger answers are refused (the API's largest, GET /vm/config, is a few KiB).
    public static let maxResponseBody = 16 << 20

    /// `body`, if given, is sent as application/json with its Content-Length. `timeout`
    /// bounds the whole exchange.
    public static func request(
        socketPath: String, method: String, path: String, body: [UInt8]? = nil,
        timeout: Duration = .seconds(10)
    ) throws(APIServerError) -> (status: Int, body: [UInt8]) {
        let forbidden: Set<UInt8> = [0x20, 0x0D, 0x0A, 0x00, 0x09]
        guard !method.isEmpty, !method.utf8.contains(where: forbidden.contains), method != "HEAD" else {
            throw .invalidRequest("method \"\(method)\"")
        }
        guard path.hasPrefix("/"), !path.utf8.contains(where: forbidden.contains) else {
            throw .invalidRequest("path \"\(path)\" (must start with / and have no spaces)")
        }
        let deadline = monotonicNanoseconds() &+ timeout.saturatingNanoseconds
        let fd = try UnixSocket.newSocket(nonBlocking: true)
        defer { close(fd) }
        try UnixSocket.connect(fd, socketPath)

        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + (body ?? [])
        try send(request, fd, deadline, socketPath)
        return try receive(fd, deadline, socketPath)
    }

    /// Writes all of `bytes`, unless the server closes first (it may have answered early,
    /// e.g. a 400 for a body over its limit): then the answer is read all the same.
    private static func send(_ bytes: [UInt8], _ fd: CInt, _ deadline: UInt64, _ path: String) throws(APIServerError) {
        var sent = 0
        while sent < bytes.count {
            try wait(fd, Int16(POLLOUT), deadline, path)
            let n = bytes.withUnsafeBytes { buf -> Int in
                guard let base = buf.baseAddress else { return 0 }
                return Glibc.send(fd, base + sent, buf.count - sent, CInt(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
            } else if n < 0 && (errno == EPIPE || errno == ECONNRESET) {
                return
            } else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                throw .system(operation: "send to \(path)", errno: Errno(rawValue: errno))
            }
        }
    }

    private static func receive(_ fd: CInt, _ deadline: UInt64, _ path: String) throws(APIServerError) -> (status: Int, body: [UInt8]) {
        let parser = MessageParser(.response, maxBody: maxResponseBody)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            try wait(fd, Int16(POLLIN), deadline, path)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                throw .system(operation: "read from \(path)", errno: Errno(rawValue: errno))
            }
            if n == 0 {   // EOF: completes an answer without Content-Length, or cuts one short
                parser.finish()
                if parser.complete { return (parser.status, parser.body) }
                throw .malformedResponse(parser.failure.map { "\($0)" } ?? "the connection closed before any answer")
            }
            var offset = 0
            while offset < n {
                let used = chunk.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[offset..<n])) }
                offset += used
                if let failure = parser.failure { throw .malformedResponse("\(failure)") }
                guard parser.complete else { break }
                guard (100..<200).contains(parser.status) else { return (parser.status, parser.body) }
                parser.startNextMessage()   // an interim "100 Continue": the real answer follows
            }
        }
    }

    private static func wait(_ fd: CInt, _ events: Int16, _ deadline: UInt64, _ path: String) throws(APIServerError) {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { throw .timedOut(path: path) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, CInt(min((deadline - now) / 1_000_000 + 1, 60_000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw .system(operation: "poll \(path)", errno: Errno(rawValue: errno)) }
        }
    }
}
