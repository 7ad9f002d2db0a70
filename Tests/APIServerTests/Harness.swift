import CShim
import Dispatch
import Foundation
import Glibc
@testable import APIServer

/// A fresh directory under /tmp for one test's socket files.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/volt-api-test-XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { fatalError("mkdtemp: \(errno)") }
    return String(cString: template)
}

func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Echoes what the server parsed, as JSON; "/big" answers 256 KiB, "/nocontent" 204.
let echoHandler: @Sendable (HTTPRequest) -> HTTPResponse = { r in
    switch r.path {
    case "/big": return .json(200, [UInt8](repeating: UInt8(ascii: "a"), count: 256 * 1024))
    case "/nocontent": return .noContent()
    default:
        let query = r.query.map(JSONString.quoted) ?? "null"
        let json = "{\"method\":\(JSONString.quoted(r.method)),\"path\":\(JSONString.quoted(r.path)),"
            + "\"query\":\(query),\"body_length\":\(r.body.count),\"keep_alive\":\(r.keepAlive),"
            + "\"body_sum\":\(r.body.reduce(0) { $0 &+ Int($1) })}"
        return .json(200, Array(json.utf8))
    }
}

/// An APIServer running `run` on its own thread, at a socket in a temporary directory.
final class TestServer: @unchecked Sendable {
    let directory: String
    let path: String
    let server: APIServer
    private let stopFD: CInt
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    /// `beforeRun` runs on the server thread first (e.g. to load a seccomp filter); false
    /// skips `run`.
    init(
        limits: APIServer.Limits = APIServer.Limits(),
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse = echoHandler,
        beforeRun: (@Sendable (APIServer) -> Bool)? = nil
    ) throws {
        directory = makeTemporaryDirectory()
        path = directory + "/api.sock"
        server = try APIServer.listen(path: path, limits: limits)
        stopFD = volt_eventfd(0, VOLT_EFD_CLOEXEC)
        let (server, stopFD, finished) = (server, stopFD, finished)
        let thread = Thread {
            do {
                if beforeRun?(server) ?? true {
                    try server.run(handler: handler, stopFD: stopFD)
                }
            } catch {
                print("APIServer.run failed: \(error)")
            }
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Stops the loop (it must return within 5 s), removes the socket and the directory.
    @discardableResult
    func stop() -> Bool {
        guard !stopped else { return true }
        stopped = true
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
        let returned = finished.wait(timeout: .now() + 5) == .success
        server.remove()
        close(stopFD)
        removeTree(directory)
        return returned
    }

    deinit { stop() }
}

/// One parsed response, as a test client sees it.
struct Response {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }
    var closes: Bool { headers["Connection"] == "close" }
}

/// A raw, blocking Unix-socket client: sends exactly the bytes a test gives it.
final class RawClient {
    let fd: CInt
    private var buffer: [UInt8] = []
    private(set) var sawEOF = false

    init(_ path: String) throws {
        fd = try UnixSocket.newSocket()
        try UnixSocket.connect(fd, path)
    }

    deinit { close(fd) }

    /// False once the server has closed (EPIPE / ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, CInt(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends without blocking; returns how many bytes went (the rest did not fit).
    func sendNonBlocking(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { max(0, Glibc.send(fd, $0.baseAddress!, $0.count, CInt(MSG_NOSIGNAL | MSG_DONTWAIT))) }
    }

    func shutdownWrite() { shutdown(fd, CInt(SHUT_WR)) }

    /// Waits up to `timeout` seconds for more bytes; false on EOF or timeout.
    private func fill(timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, CInt(timeout * 1000)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 {
            sawEOF = true
            return false
        }
        buffer += chunk[0..<n]
        return true
    }

    /// The next response on this connection, or nil if the connection ended (or nothing
    /// came within `timeout` seconds) before a complete one.
    func response(timeout: Double = 5) -> Response? {
        let parser = MessageParser(.response, maxBody: 64 << 20)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if !buffer.isEmpty {
                let used = buffer.withUnsafeBytes { parser.feed($0) }
                buffer.removeFirst(used)
                if parser.failure != nil { return nil }
                if parser.complete {
                    return Response(status: parser.status, headers: parser.headers, body: parser.body)
                }
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 || !fill(timeout: left) {
                if sawEOF {
                    parser.finish()
                    if parser.complete { return Response(status: parser.status, headers: parser.headers, body: parser.body) }
                }
                return nil
            }
        }
    }

    /// Reads until the server closes; nil if it is still open after `timeout` seconds.
    func readToEOF(timeout: Double = 5) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while !sawEOF {
            let left = max(0, deadline.timeIntervalSinceNow)
            if !fill(timeout: left) && !sawEOF && left == 0 { return nil }
        }
        defer { buffer = [] }
        return buffer
    }
}

/// Runs `body` `count` times at once on separate threads and waits for all.
func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        Thread {
            body(i)
            group.leave()
        }.start()
    }
    group.wait()
}

/// A seeded generator (SplitMix64): the same seed replays the same test.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func get(_ path: String) -> String { "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n" }

func put(_ path: String, _ body: String, extra: String = "") -> String {
    "PUT \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
}
