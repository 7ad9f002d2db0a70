import Foundation
import Glibc
import Testing
@testable import APIServer

@Suite struct RoundTripTests {
    @Test func getAnswersWithJSON() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send(get("/machine-config?a=1&b=2"))
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.headers["Server"] == "Firecracker API")
        #expect(r.headers["Connection"] == "keep-alive")
        #expect(r.headers["Content-Type"] == "application/json")
        let j = try #require(r.json)
        #expect(j["method"] as? String == "GET")
        #expect(j["path"] as? String == "/machine-config")
        #expect(j["query"] as? String == "a=1&b=2")
        #expect(j["keep_alive"] as? Bool == true)
    }

    @Test func putWithJSONBody() throws {
        let s = try TestServer()
        defer { s.stop() }
        let body = #"{"vcpu_count": 2, "mem_size_mib": 256}"#
        let c = try RawClient(s.path)
        c.send(put("/machine-config", body))
        let j = try #require(c.response()?.json)
        #expect(j["method"] as? String == "PUT")
        #expect(j["body_length"] as? Int == body.utf8.count)
    }

    @Test func absoluteFormTargetGivesThePath() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET http://localhost/drives/rootfs HTTP/1.1\r\n\r\n")
        #expect(try #require(c.response()?.json)["path"] as? String == "/drives/rootfs")
    }

    @Test func noContentOnKeepAlive() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send(get("/nocontent") + get("/x"))
        let first = try #require(c.response())
        #expect(first.status == 204 && first.body.isEmpty && first.headers["Content-Length"] == nil)
        #expect(c.response()?.status == 200)
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        for i in 0..<50 {
            c.send(i % 2 == 0 ? get("/r\(i)") : put("/r\(i)", String(repeating: "x", count: i)))
            let j = try #require(c.response()?.json)
            #expect(j["path"] as? String == "/r\(i)")
            #expect(j["body_length"] as? Int == (i % 2 == 0 ? 0 : i))
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send((0..<20).map { put("/p\($0)", "{}") }.joined())
        for i in 0..<20 {
            #expect(try #require(c.response()?.json)["path"] as? String == "/p\(i)")
        }
    }

    @Test func requestSplitIntoSingleBytes() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        for b in Array(put("/split", #"{"a":1}"#).utf8) {
            c.send([b])
            usleep(200)
        }
        #expect(try #require(c.response()?.json)["body_length"] as? Int == 7)
    }

    @Test func chunkedBodyIsAssembledByTheParser() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        #expect(try #require(c.response()?.json)["body_length"] as? Int == 7)
    }

    @Test func severalConnectionsInTurn() throws {
        let s = try TestServer()
        defer { s.stop() }
        for i in 0..<30 {
            let c = try RawClient(s.path)
            c.send(get("/turn\(i)"))
            #expect(try #require(c.response()?.json)["path"] as? String == "/turn\(i)")
        }
    }

    @Test func severalConnectionsAtOnce() throws {
        let s = try TestServer()
        defer { s.stop() }
        let path = s.path
        let failures = Counter()
        concurrently(12) { t in
            do {
                let c = try RawClient(path)
                for i in 0..<20 {
                    c.send(put("/t\(t)/\(i)", String(repeating: "y", count: t * 100 + i)))
                    guard let j = c.response()?.json, j["path"] as? String == "/t\(t)/\(i)",
                          j["body_length"] as? Int == t * 100 + i else { failures.add(); return }
                }
            } catch {
                failures.add()
            }
        }
        #expect(failures.value == 0)
    }

    @Test func http10WithoutKeepAliveCloses() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET /old HTTP/1.0\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.closes)
        #expect(r.json?["keep_alive"] as? Bool == false)
        #expect(c.readToEOF() == [])
    }

    @Test func http10WithKeepAliveStaysOpen() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(c.response()?.closes == false)
        c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(c.response()?.json?["path"] as? String == "/b")
    }

    @Test func connectionCloseFromTheClientIsHonoured() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n" + get("/never"))
        #expect(c.response()?.closes == true)
        #expect(c.readToEOF() == [])   // the pipelined second request is not answered
    }

    @Test func headRequestGetsNoBody() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("HEAD /x HTTP/1.1\r\n\r\n" + get("/after"))
        // Content-Length describes the GET body; no body bytes follow, so the next
        // response starts right after the head.
        var raw: [UInt8] = []
        let deadline = Date().addingTimeInterval(5)
        while !String(decoding: raw, as: UTF8.self).contains("\"/after\"") && Date() < deadline {
            var chunk = [UInt8](repeating: 0, count: 4096)
            var p = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)   // the fd is non-blocking
            guard poll(&p, 1, 5000) > 0 else { break }
            let n = read(c.fd, &chunk, chunk.count)
            if n <= 0 { break }
            raw += chunk[0..<n]
        }
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"))
    }

    @Test func expectContinueGets100BeforeTheBody() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("PUT /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(c.response()?.status == 100)
        c.send("abcd")
        #expect(c.response()?.json?["body_length"] as? Int == 4)
    }

    @Test func upgradeIsAnsweredThenClosed() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{81}\u{85}binary")
        let r = try #require(c.response())
        #expect(r.status == 200 && r.closes)
        #expect(c.readToEOF() == [])
    }

    @Test func curlIsAnIndependentClient() throws {
        let s = try TestServer()
        defer { s.stop() }
        let body = #"{"action_type": "InstanceStart"}"#
        let out = try curl(["--unix-socket", s.path, "-X", "PUT", "http://localhost/actions",
                            "-H", "Content-Type: application/json", "-d", body])
        let lines = out.split(separator: "\n")
        #expect(lines.last == "200")
        let j = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(j?["path"] as? String == "/actions")
        #expect(j?["body_length"] as? Int == body.utf8.count)
    }

    @Test func curlWithALargeBodyGets100Continue() throws {
        // curl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to 1 s for it.
        let s = try TestServer()
        defer { s.stop() }
        let body = "{\"pad\":\"" + String(repeating: "z", count: 20_000) + "\"}"
        let start = Date()
        let out = try curl(["--unix-socket", s.path, "-X", "PUT", "http://localhost/big-body", "-d", body])
        let elapsed = Date().timeIntervalSince(start)
        #expect(out.hasSuffix("\n200"))
        #expect(out.contains("\"body_length\":\(body.utf8.count)"))
        #expect(elapsed < 0.9, "curl waited \(elapsed) s: no 100 Continue?")
    }

    @Test func httpClientRoundTrip() throws {
        let s = try TestServer()
        defer { s.stop() }
        let r = try HTTPClient.request(socketPath: s.path, method: "PUT", path: "/vm", body: Array(#"{"state":"Paused"}"#.utf8))
        #expect(r.status == 200)
        let j = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        #expect(j?["body_length"] as? Int == 18)
        #expect(j?["keep_alive"] as? Bool == false)
        let g = try HTTPClient.request(socketPath: s.path, method: "GET", path: "/nocontent")
        #expect(g.status == 204 && g.body.isEmpty)
        let big = try HTTPClient.request(socketPath: s.path, method: "GET", path: "/big")
        #expect(big.body.count == 256 * 1024)
    }

    @Test func httpClientErrors() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        #expect(throws: APIServerError.self) { try HTTPClient.request(socketPath: dir + "/none", method: "GET", path: "/") }
        #expect(throws: APIServerError.invalidRequest("path \"x y\" (must start with / and have no spaces)")) {
            try HTTPClient.request(socketPath: dir + "/none", method: "GET", path: "x y")
        }
        // A socket that listens but never answers: the client gives up at its timeout.
        let fd = try UnixSocket.newSocket()
        defer { close(fd) }
        try UnixSocket.bind(fd, dir + "/mute")
        Glibc.listen(fd, 4)
        let start = Date()
        #expect(throws: APIServerError.timedOut(path: dir + "/mute")) {
            try HTTPClient.request(socketPath: dir + "/mute", method: "GET", path: "/", timeout: .milliseconds(200))
        }
        #expect(Date().timeIntervalSince(start) < 3)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// Runs curl with `-s -w "\n%{http_code}"`; returns its stdout.
func curl(_ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    p.arguments = ["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"] + arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
