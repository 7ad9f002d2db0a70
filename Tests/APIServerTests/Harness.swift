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

/// A raw client on an `HTTPConnection`: sends exactly the bytes a test gives it; a
/// timeout or EOF before a complete answer is nil.
final class RawClient {
    let connection: HTTPConnection
    var fd: CInt { connection.fileDescriptor }
    var sawEOF: Bool { connection.closedByServer }

    init(_ path: String) throws {
        connection = try HTTPConnection(socketPath: path)
    }

    /// False once the server has closed (EPIPE / ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool { (try? connection.send(bytes, timeout: .seconds(10))) ?? false }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends without blocking; returns how many bytes went (the rest did not fit).
    func sendNonBlocking(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { max(0, Glibc.send(fd, $0.baseAddress!, $0.count, CInt(MSG_NOSIGNAL | MSG_DONTWAIT))) }
    }

    func shutdownWrite() { connection.shutdownWrite() }

    /// The next response on this connection, or nil if the connection ended (or nothing
    /// came within `timeout` seconds) before a complete one.
    func response(timeout: Double = 5) -> Response? {
        guard let r = try? connection.response(timeout: .milliseconds(Int(timeout * 1000))) else { return nil }
        return Response(status: r.status, headers: r.headers, body: r.body)
    }

    /// Reads until the server closes; nil if it is still open after `timeout` seconds.
    func readToEOF(timeout: Double = 5) -> [UInt8]? {
        try? connection.readToEOF(timeout: .milliseconds(Int(timeout * 1000)))
    }

    /// Waits up to `timeout` seconds (0: just looks) for the server to close. True for a
    /// plain EOF with nothing before it, false for bytes or a reset (the server closed
    /// with a request of ours unread), nil if it is still open.
    func endsCleanly(timeout: Double = 5) -> Bool? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, CInt(timeout * 1000)) == 1 else { return nil }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 0
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

func get(_ path: String) -> String { "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n" }

/// A PUT's head only, asking for "100 Continue": once that arrives, the server has read
/// the head and waits for the `length` bytes of body.
func putHead(_ path: String, length: Int) -> String {
    "PUT \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(length)\r\nExpect: 100-continue\r\n\r\n"
}

func put(_ path: String, _ body: String, extra: String = "") -> String {
    "PUT \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
}
