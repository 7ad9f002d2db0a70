import Glibc
import SystemPackage

/// A client's connection to an API socket, kept alive across requests as Firecracker's
/// clients keep theirs (`volt-vmm ctl`, benchmarks, tests). Answers are framed by the same
/// libhttp-parser in response mode: Content-Length, chunked, or until EOF. Every call has
/// a deadline; nothing here blocks without one.
public final class HTTPConnection {
    public struct Response: Sendable, Equatable {
        public let status: Int
        public let headers: HTTPHeaders
        public let body: [UInt8]
    }

    /// Larger answers are refused (the API's largest, GET /vm/config, is a few KiB).
    public static let maxResponseBody = 16 << 20

    public let socketPath: String
    /// The connected socket (non-blocking), for tests that need the raw fd.
    public let fileDescriptor: CInt
    /// The server closed its side (EOF seen).
    public private(set) var closedByServer = false
    private var buffer: [UInt8] = []
    private let parser = MessageParser(.response, maxBody: HTTPConnection.maxResponseBody)

    public init(socketPath: String) throws(APIServerError) {
        self.socketPath = socketPath
        fileDescriptor = try UnixSocket.newSocket(nonBlocking: true)
        do { try UnixSocket.connect(fileDescriptor, socketPath) } catch {
            close(fileDescriptor)
            throw error
        }
    }

    deinit { close(fileDescriptor) }

    /// One request and its answer. `body`, if given, goes as application/json with its
    /// Content-Length; `closing` asks the server to close after answering.
    public func request(method: String, path: String, body: [UInt8]? = nil, closing: Bool = false,
                        timeout: Duration = .seconds(10)) throws(APIServerError) -> Response {
        let request = try Self.requestBytes(method: method, path: path, body: body, closing: closing)
        let deadline = Self.deadline(timeout)
        try send(request, deadline)
        while true {
            guard let answer = try nextResponse(deadline) else {
                throw .malformedResponse("the connection closed before any answer")
            }
            if !(100..<200).contains(answer.status) { return answer }   // "100 Continue": the real answer follows
        }
    }

    /// A request's bytes; refuses a method or path that would not make one request line.
    public static func requestBytes(method: String, path: String, body: [UInt8]?, closing: Bool) throws(APIServerError) -> [UInt8] {
        let forbidden: Set<UInt8> = [0x20, 0x0D, 0x0A, 0x00, 0x09]
        guard !method.isEmpty, !method.utf8.contains(where: forbidden.contains), method != "HEAD" else {
            throw .invalidRequest("method \"\(method)\"")
        }
        guard path.hasPrefix("/"), !path.utf8.contains(where: forbidden.contains) else {
            throw .invalidRequest("path \"\(path)\" (must start with / and have no spaces)")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
        if closing { head += "Connection: close\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        return Array((head + "\r\n").utf8) + (body ?? [])
    }

    /// Sends `bytes` as they are. False if the server closed first (it may have answered
    /// early, e.g. a 400 for a body over its limit: read it with `response`).
    @discardableResult
    public func send(_ bytes: [UInt8], timeout: Duration = .seconds(10)) throws(APIServerError) -> Bool {
        try send(bytes, Self.deadline(timeout))
    }

    /// The next answer, an interim 1xx too; nil if the server closed before a complete one.
    public func response(timeout: Duration = .seconds(10)) throws(APIServerError) -> Response? {
        try nextResponse(Self.deadline(timeout))
    }

    /// Reads until the server closes; the bytes after the last answer taken.
    public func readToEOF(timeout: Duration = .seconds(10)) throws(APIServerError) -> [UInt8] {
        let deadline = Self.deadline(timeout)
        while !closedByServer { try fill(deadline) }
        defer { buffer = [] }
        return buffer
    }

    /// No more requests from this side (the server sees EOF).
    public func shutdownWrite() { shutdown(fileDescriptor, CInt(SHUT_WR)) }

    private func send(_ bytes: [UInt8], _ deadline: UInt64) throws(APIServerError) -> Bool {
        var sent = 0
        while sent < bytes.count {
            try wait(Int16(POLLOUT), deadline)
            let n = bytes.withUnsafeBytes { buf -> Int in
                guard let base = buf.baseAddress else { return 0 }
                return Glibc.send(fileDescriptor, base + sent, buf.count - sent, CInt(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
            } else if n < 0 && (errno == EPIPE || errno == ECONNRESET) {
                return false
            } else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                throw .system(operation: "send to \(socketPath)", errno: Errno(rawValue: errno))
            }
        }
        return true
    }

    private func nextResponse(_ deadline: UInt64) throws(APIServerError) -> Response? {
        while true {
            if !buffer.isEmpty {
                let used = buffer.withUnsafeBytes { parser.feed($0) }
                buffer.removeFirst(used)
                if let failure = parser.failure { throw .malformedResponse("\(failure)") }
                if parser.complete {
                    let answer = Response(status: parser.status, headers: parser.headers, body: parser.body)
                    parser.startNextMessage()
                    return answer
                }
            }
            if closedByServer {
                parser.finish()   // EOF completes an answer without Content-Length
                guard parser.complete else { return nil }
                let answer = Response(status: parser.status, headers: parser.headers, body: parser.body)
                parser.startNextMessage()
                return answer
            }
            try fill(deadline)
        }
    }

    /// Reads what is there (waiting until the deadline for something); EOF sets
    /// `closedByServer`.
    private func fill(_ deadline: UInt64) throws(APIServerError) {
        try wait(Int16(POLLIN), deadline)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
        if n > 0 {
            buffer += chunk[0..<n]
        } else if n == 0 || errno == ECONNRESET {
            closedByServer = true
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            throw .system(operation: "read from \(socketPath)", errno: Errno(rawValue: errno))
        }
    }

    private func wait(_ events: Int16, _ deadline: UInt64) throws(APIServerError) {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { throw .timedOut(path: socketPath) }
            var p = pollfd(fd: fileDescriptor, events: events, revents: 0)
            let r = poll(&p, 1, CInt(min((deadline - now) / 1_000_000 + 1, 60_000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw .system(operation: "poll \(socketPath)", errno: Errno(rawValue: errno)) }
        }
    }

    private static func deadline(_ timeout: Duration) -> UInt64 {
        monotonicNanoseconds() &+ timeout.saturatingNanoseconds
    }
}
