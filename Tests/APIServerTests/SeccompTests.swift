import Glibc
import Sandbox
import Testing
@testable import APIServer

/// `run` under a seccomp filter that allows only the system calls APIServer.swift lists,
/// killing the process otherwise: if `run` made any other call (open, socket, fcntl, a
/// write to stderr, ...), this test process would die with SIGSYS.
@Suite struct SeccompTests {
    private static func rules(listeningFD: CInt) -> [SeccompRule] {
        let plain = APIServer.runSystemCalls.filter { $0 != "accept4" && $0 != "sendto" }
            + APIServer.allocatorSystemCalls
        return plain.map { SeccompRule($0, why: "APIServer.run") } + [
            // The argument checks the VMM's API-thread filter can make, too.
            SeccompRule("accept4", Arg(0) == listeningFD,
                        Arg(3) == Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                        why: "new connections, non-blocking and close-on-exec"),
            SeccompRule("sendto", Arg(3).hasAll(UInt64(MSG_NOSIGNAL)), why: "answers; EPIPE instead of SIGPIPE"),
            // After `run` returns, Foundation's Thread ends: signal the test, free the stack.
            SeccompRule("exit", why: "thread exit"),
            SeccompRule("rt_sigprocmask", why: "thread exit"),
            SeccompRule("gettid", why: "thread exit"),
        ]
    }

    @Test func runMakesOnlyTheDocumentedSystemCalls() throws {
        let loaded = Counter()
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .seconds(2), maxConnections: 3)) { server in
            do {
                try Sandbox.filterThisThread(Self.rules(listeningFD: server.listeningFD), mode: .kill)
                loaded.add()
                return true
            } catch {
                return false
            }
        }
        defer { s.stop() }
        // Every path through the loop: keep-alive, pipelining, a big answer, a fault, EOF
        // mid-request, "100 Continue", closing an idle connection to make room, 503 when
        // full, the request timeout, a hang-up mid-answer.
        let c = try RawClient(s.path)
        c.send(get("/a") + put("/b", #"{"x":1}"#))
        #expect(c.response()?.status == 200)
        #expect(c.response()?.status == 200)
        c.send(get("/big"))
        #expect(c.response()?.body.count == 256 * 1024)
        let bad = try RawClient(s.path)
        bad.send("BAD REQUEST\r\n\r\n")
        #expect(bad.response()?.status == 400)
        let short = try RawClient(s.path)
        short.send("PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        short.shutdownWrite()
        #expect(short.response()?.status == 400)
        // Full with `c` idle: a newcomer takes its place. Full with all mid-request: 503.
        let mid1 = try RawClient(s.path)
        mid1.send(putHead("/m1", length: 2))
        #expect(mid1.response()?.status == 100)
        let mid2 = try RawClient(s.path)
        mid2.send(putHead("/m2", length: 2))
        #expect(mid2.response()?.status == 100)
        let newcomer = try RawClient(s.path)
        newcomer.send(get("/new"))
        #expect(newcomer.response()?.status == 200)
        #expect(c.readToEOF() == [])
        newcomer.send(putHead("/m3", length: 2))
        #expect(newcomer.response()?.status == 100)
        let over = try RawClient(s.path)
        #expect(over.response()?.status == 503)
        for m in [mid1, mid2, newcomer] { #expect(m.readToEOF(timeout: 10) == []) }   // the request timeout
        do {
            let gone = try RawClient(s.path)
            gone.send(get("/big"))
        }
        let after = try RawClient(s.path)
        after.send(get("/after"))
        #expect(after.response()?.status == 200)
        #expect(loaded.value == 1, "the filter did not load")
        #expect(s.stop(), "run did not return")
    }
}
