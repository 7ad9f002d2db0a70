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
        let s = try TestServer(limits: APIServer.Limits(idleTimeout: .milliseconds(300), maxConnections: 3)) { server in
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
        // mid-request, a hang-up mid-answer, 503 when full, an idle timeout.
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
        do {
            let gone = try RawClient(s.path)
            gone.send(get("/big"))
        }
        let idle1 = try RawClient(s.path)
        let idle2 = try RawClient(s.path)
        let over = try RawClient(s.path)
        #expect(over.response()?.status == 503 || over.readToEOF() != nil)
        #expect(idle1.readToEOF() != nil && idle2.readToEOF() != nil)   // dropped at the timeout
        #expect(loaded.value == 1, "the filter did not load")
        #expect(s.stop(), "run did not return")
    }
}
