import Foundation
import Glibc
import Testing
@testable import APIServer

/// Hostile and broken clients: each gets a 400 or a closed connection, and the server
/// goes on serving everyone else.
@Suite struct LimitsTests {
    private func fault(_ r: Response?) -> String? {
        guard let r, r.status == 400, r.closes else { return nil }
        return r.json?["fault_message"] as? String
    }

    /// Sends `bytes`, expects a 400 fault then EOF; returns the fault message.
    private func expectFault(_ s: TestServer, _ bytes: [UInt8]) throws -> String {
        let c = try RawClient(s.path)
        c.send(bytes)
        let message = try #require(fault(c.response()))
        #expect(c.readToEOF() != nil)
        return message
    }

    /// A client half-way through a request: its head is read (the "100 Continue" says
    /// so), its 2-byte body is awaited.
    private func midRequest(_ s: TestServer, _ path: String = "/mid") throws -> RawClient {
        let c = try RawClient(s.path)
        c.send(putHead(path, length: 2))
        #expect(c.response()?.status == 100)
        return c
    }

    private func expectStillServing(_ s: TestServer) throws {
        let c = try RawClient(s.path)
        c.send(get("/alive"))
        #expect(c.response(timeout: 2)?.json?["path"] as? String == "/alive")
    }

    @Test func headOver8KiBIs400() throws {
        let s = try TestServer()
        defer { s.stop() }
        let big = "GET / HTTP/1.1\r\nX-Big: \(String(repeating: "h", count: 9000))\r\n\r\n"
        let m = try expectFault(s, Array(big.utf8))
        #expect(m.contains("larger than the limit of 8192 bytes"))
        // Many small headers add up the same way.
        let many = "GET / HTTP/1.1\r\n" + (0..<500).map { "X-H\($0): 0123456789\r\n" }.joined() + "\r\n"
        _ = try expectFault(s, Array(many.utf8))
        // So does a long request line, even before its first CRLF.
        _ = try expectFault(s, Array("GET /\(String(repeating: "u", count: 9000))".utf8))
        try expectStillServing(s)
    }

    @Test func headJustUnder8KiBIsFine() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("GET /ok HTTP/1.1\r\nX-Big: \(String(repeating: "h", count: 8000))\r\n\r\n")
        #expect(c.response()?.status == 200)
    }

    @Test func declaredBodyOverTheLimitIs400BeforeTheBodyIsRead() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("PUT /drives/x HTTP/1.1\r\nContent-Length: 51201\r\n\r\naaaaa")
        #expect(fault(c.response()) == "Request payload with size 51201 is larger than the limit of 51200 allowed by server.")
        let exact = put("/at-limit", String(repeating: "b", count: 51_200))
        let d = try RawClient(s.path)
        d.send(exact)
        #expect(d.response()?.json?["body_length"] as? Int == 51_200)
    }

    @Test func negativeLimitsDoNotTrap() throws {
        let s = try TestServer(limits: APIServer.Limits(maxPayload: -1, maxConnections: -5))
        defer { s.stop() }
        _ = try expectFault(s, Array(put("/x", "a").utf8))
        try expectStillServing(s)
    }

    @Test func configurableMaxPayload() throws {
        let s = try TestServer(limits: APIServer.Limits(maxPayload: 4))
        defer { s.stop() }
        let m = try expectFault(s, Array(put("/x", "aaaaa").utf8))
        #expect(m == "Request payload with size 5 is larger than the limit of 4 allowed by server.")
    }

    @Test func chunkedBodyOverTheLimitIs400() throws {
        let s = try TestServer(limits: APIServer.Limits(maxPayload: 100))
        defer { s.stop() }
        let chunks = String(repeating: "10\r\n" + String(repeating: "c", count: 16) + "\r\n", count: 10)
        let m = try expectFault(s, Array("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\(chunks)0\r\n\r\n".utf8))
        #expect(m.contains("larger than the limit of 100"))
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",                                  // no method
        "GET\r\n\r\n",                                      // no target
        "GET / HTTP/9x\r\n\r\n",                            // bad version
        "GET /a b c HTTP/1.1\r\n\r\n",                      // spaces in the target
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",          // header without a colon
        "GET / HTTP/1.1\r\nBad(Name): x\r\n\r\n",           // separator in a header name
        "GET / HTTP/1.1\r\n: no name\r\n\r\n",              // empty header name
        "GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n",            // control character in a value
        "PUT / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",    // bad Content-Length
        "PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",       // two lengths
        "PUT / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", // smuggling
        "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",               // bad chunk size
        "\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\u{01}\u{fc}\u{03}\u{03}",      // a TLS hello
    ])
    func malformedRequestIs400AndClose(_ request: String) throws {
        let s = try TestServer()
        defer { s.stop() }
        let m = try expectFault(s, Array(request.utf8))
        #expect(m.hasPrefix("Invalid HTTP request: "))
        try expectStillServing(s)
    }

    @Test func bodyShorterThanContentLengthThenEOF() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("PUT /short HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"a\":1}")
        c.shutdownWrite()
        #expect(fault(c.response()) == "The connection ended in the middle of a request.")
        #expect(c.readToEOF() != nil)
        try expectStillServing(s)
    }

    @Test func bodyLongerThanContentLengthIsTheNextRequest() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        c.send("PUT /long HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}} trailing junk\r\n\r\n")
        #expect(c.response()?.json?["body_length"] as? Int == 2)
        #expect(fault(c.response())?.hasPrefix("Invalid HTTP request") == true)
        #expect(c.readToEOF() != nil)
    }

    @Test func idleKeepAliveConnectionOutlivesTheRequestTimeout() throws {
        // Go's http.Transport (firecracker-go-sdk) reuses idle connections and does not
        // retry a PUT or PATCH that meets one the server has just closed.
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .milliseconds(300)))
        defer { s.stop() }
        let c = try RawClient(s.path)
        let silent = try RawClient(s.path)   // never sent a byte: between requests too
        c.send(get("/configure"))
        #expect(c.response()?.status == 200)
        usleep(900_000)   // 3x the request timeout
        #expect(c.endsCleanly(timeout: 0) == nil && silent.endsCleanly(timeout: 0) == nil, "closed while idle")
        c.send(put("/pause", "{}"))
        #expect(c.response()?.json?["path"] as? String == "/pause")
        silent.send(get("/at-last"))
        #expect(silent.response()?.json?["path"] as? String == "/at-last")
    }

    @Test func halfRequestThenSilenceIsDroppedWhileOthersAreServed() throws {
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .milliseconds(1000)))
        defer { s.stop() }
        let start = Date()
        let half = try RawClient(s.path)
        half.send("PUT /half HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"par")
        for _ in 0..<3 { try expectStillServing(s) }
        #expect(half.endsCleanly(timeout: 0) == nil, "dropped before the others were served")
        #expect(half.readToEOF(timeout: 5) == [])
        #expect(Date().timeIntervalSince(start) >= 0.9)
        try expectStillServing(s)
    }

    @Test func trickleIsClosedAtTheRequestTimeoutThoughItKeepsSending() throws {
        // The timeout runs from the request's first byte: each byte does not restart it,
        // so a client trickling one byte at a time cannot hold a slot.
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .milliseconds(300)))
        defer { s.stop() }
        let c = try RawClient(s.path)
        let request = Array(put("/slow", String(repeating: "s", count: 40)).utf8)   // 131 bytes: 13 s at this pace
        let start = Date()
        var sent = 0
        var closed = false
        for b in request {
            guard c.send([b]) else { break }        // EPIPE: the server has closed
            sent += 1
            if c.readToEOF(timeout: 0.1) != nil {   // also the pace: a byte per 100 ms
                closed = true
                break
            }
        }
        let waited = Date().timeIntervalSince(start)
        #expect(closed || c.readToEOF(timeout: 5) != nil, "still open")
        #expect(sent < request.count, "the whole request went through, byte by byte")
        #expect(waited >= 0.3 && waited < 3, "closed after \(waited) s and \(sent) bytes")
        try expectStillServing(s)
    }

    @Test func clientThatDisconnectsMidRequest() throws {
        let s = try TestServer()
        defer { s.stop() }
        for cut in [1, 10, 40, 60] {
            let c = try RawClient(s.path)
            c.send(Array(Array(put("/gone", String(repeating: "g", count: 40)).utf8).prefix(cut)))
        }   // each RawClient closes here
        try expectStillServing(s)
    }

    @Test func clientThatDisconnectsMidResponse() throws {
        let s = try TestServer()
        defer { s.stop() }
        for _ in 0..<5 {
            let c = try RawClient(s.path)
            c.send(get("/big"))
            var one = [UInt8](repeating: 0, count: 100)
            _ = read(c.fd, &one, one.count)
        }   // closed with most of 256 KiB unread
        try expectStillServing(s)
    }

    @Test func clientThatNeverReadsDoesNotBlockTheLoop() throws {
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .milliseconds(300)))
        defer { s.stop() }
        let hog = try RawClient(s.path)
        // 200 pipelined requests for 256 KiB each, never read: the server writes until the
        // socket buffer is full, then stops reading this client.
        var queued = 0
        let request = Array(get("/big").utf8)
        for _ in 0..<200 { queued += hog.sendNonBlocking(request) }
        let start = Date()
        for _ in 0..<5 { try expectStillServing(s) }
        #expect(Date().timeIntervalSince(start) < 2)
        // Its answer pending for longer than the timeout: dropped. What it can still read is
        // what the kernel had buffered, less than one answer: the server queues nothing more.
        usleep(1_000_000)
        let got = try #require(hog.readToEOF(timeout: 5))
        #expect(got.count < 256 * 1024)
        #expect(queued > 0)
    }

    @Test func newClientAtTheLimitTakesTheLongestIdleConnectionsPlace() throws {
        let s = try TestServer(limits: APIServer.Limits(maxConnections: 3))
        defer { s.stop() }
        let oldest = try RawClient(s.path)
        oldest.send(get("/oldest"))
        #expect(oldest.response()?.status == 200)
        let newer = try RawClient(s.path)
        newer.send(get("/newer"))
        #expect(newer.response()?.status == 200)
        let busy = try midRequest(s)
        let newcomer = try RawClient(s.path)
        newcomer.send(get("/newcomer"))
        #expect(newcomer.response()?.json?["path"] as? String == "/newcomer")
        // Closed before the newcomer was even read, with nothing unread: a plain EOF.
        #expect(oldest.endsCleanly(timeout: 0) == true)
        newer.send(get("/newer-again"))
        #expect(newer.response()?.json?["path"] as? String == "/newer-again")
        busy.send("{}")
        #expect(busy.response()?.json?["body_length"] as? Int == 2)
    }

    @Test func newClientGets503WhenEveryConnectionIsMidRequest() throws {
        let s = try TestServer(limits: APIServer.Limits(maxConnections: 2))
        defer { s.stop() }
        let a = try midRequest(s, "/a")
        let b = try midRequest(s, "/b")
        let c = try RawClient(s.path)
        let r = try #require(c.response())
        #expect(r.status == 503 && r.closes)
        #expect((r.json?["fault_message"] as? String)?.contains("Too many open connections") == true)
        // Neither was disturbed; once both are between requests, the next client takes the
        // place of the one idle longer.
        a.send("{}")
        #expect(a.response()?.json?["path"] as? String == "/a")
        b.send("{}")
        #expect(b.response()?.json?["path"] as? String == "/b")
        let d = try RawClient(s.path)
        d.send(get("/d"))
        #expect(d.response()?.status == 200)
        #expect(a.endsCleanly(timeout: 0) == true)
        #expect(b.endsCleanly(timeout: 0) == nil)
    }

    @Test func stopReturnsWithConnectionsOpen() throws {
        let s = try TestServer()
        let idle = try RawClient(s.path)
        let half = try RawClient(s.path)
        half.send("PUT /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nab")
        try expectStillServing(s)
        #expect(s.stop())
        #expect(idle.readToEOF(timeout: 2) == [])
        #expect(half.readToEOF(timeout: 2) == [])
    }
}
