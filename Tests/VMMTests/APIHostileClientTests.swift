import APIServer
import Foundation
import Testing
import TestFrontend
import VoltTestSupport

/// Hostile clients against a running VM's API: oversized, malformed and cut-off requests,
/// silent and vanishing clients, bodies that are not JSON or are JSON of the wrong shape,
/// then 1,000 seeded random requests. Every answer is a 4xx/5xx fault, a 2xx, or a
/// closed connection; afterwards the VM still runs and the API still answers.
@Suite(.serialized) struct APIHostileClientTests {
    static let paths = ["/", "/version", "/vm", "/vm/config", "/machine-config", "/boot-source", "/drives/root",
                        "/drives/", "/drives/a/b", "/network-interfaces/eth0", "/actions", "/logger", "/metrics",
                        "/entropy", "/vsock", "/snapshot/create", "/snapshot/load", "/balloon", "/mmds", "/cpu-config",
                        "/%00", "/../../etc/passwd", "/" + String(repeating: "a", count: 2000)]
    static let bodies = [#"{"vcpu_count": 2, "mem_size_mib": 128}"#, #"{"kernel_image_path": "/x", "boot_args": "y"}"#,
                         #"{"drive_id": "root", "path_on_host": "/etc/shadow", "is_root_device": true}"#,
                         #"{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "52:54:00:00:00:01"}"#,
                         #"{"action_type": "FlushMetrics"}"#, #"{"state": "Resumed"}"#, #"{"log_path": "/tmp/l", "level": "Debug"}"#,
                         #"{"rate_limiter": {"bandwidth": {"size": 18446744073709551615, "refill_time": -1}}}"#,
                         #"{"vcpu_count": 1e308, "mem_size_mib": -0.5}"#, #"{"a": "\u0000\ud800"}"#, "[]", "null", "\"str\"", "1",
                         String(repeating: "[", count: 40_000), String(repeating: "{\"a\":", count: 10_000)]

    func tickerVM(_ tag: String) throws -> APIVM? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let ticker = TestEnvironment.guest("ticker") else {
            Issue.record("test guest ticker did not build (make -C guests)")
            return nil
        }
        let vm = try APIVM(socket: apiSocketPath(tag), arguments: ["--kernel", ticker, "--cmdline", "ticker.ms=50"])
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        #expect(vm.waitForTick(2), "stdout: \(vm.stdout)")
        return vm
    }

    /// The VM runs on (its ticks advance) and the API answers; then it ends cleanly.
    func expectStillWorking(_ vm: APIVM, _ context: String) {
        let resumed = vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#)
        #expect(resumed.status == 204, "\(context): \(resumed)")
        let info = vm.call("GET", "/")
        #expect(info.status == 200 && info.json["state"] as? String == "Running", "\(context): \(info)")
        let before = vm.ticks.last?.tick ?? 0
        #expect(vm.waitForTick(before + 2), "\(context): the guest still runs")
        #expect(vm.call("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status == 204)
        #expect(vm.exitStatus(timeout: 30) == 0, "\(context): stderr \(vm.stderr)")
    }

    func answer(_ c: HTTPConnection, _ bytes: [UInt8]) -> HTTPConnection.Response? {
        guard (try? c.send(bytes, timeout: .seconds(5))) != nil else { return nil }
        return try? c.response(timeout: .seconds(5))
    }

    @Test func malformedOversizedAndSilentClients() throws {
        guard let vm = try tickerVM("hostile") else { return }
        defer { vm.process.stop() }
        // One client connects and says nothing; another sends half a request. Both stay
        // connected while everyone else is served.
        let silent = try HTTPConnection(socketPath: vm.socket)
        let half = try HTTPConnection(socketPath: vm.socket)
        try half.send(Array("PUT /machine-config HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"vcpu".utf8))
        #expect(vm.state() == "Running", "served beside a silent and a half-sent client")

        let cases: [(String, [UInt8])] = [
            ("over the payload limit", Array("PUT /machine-config HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n".utf8)),
            ("a bad request line", Array("THIS IS NOT HTTP\r\n\r\n".utf8)),
            ("a bad header", Array("GET / HTTP/1.1\r\nNo colon here\r\n\r\n".utf8)),
            ("a huge header", Array("GET / HTTP/1.1\r\nX: \(String(repeating: "x", count: 20_000))\r\n\r\n".utf8)),
            ("binary garbage", (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 37) }),
            ("not JSON", Array("PUT /machine-config HTTP/1.1\r\nContent-Length: 9\r\n\r\nnot json!".utf8)),
            ("JSON of the wrong shape", Array("PUT /boot-source HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]".utf8)),
        ]
        for (what, bytes) in cases {
            let c = try HTTPConnection(socketPath: vm.socket)
            if let r = answer(c, bytes) {
                #expect((400..<600).contains(r.status), "\(what): \(r.status)")
                if r.status == 400 {
                    let fault = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]
                    #expect(fault?["fault_message"] is String, "\(what): a fault message")
                }
            } // else: the connection was closed, also fine
        }
        // Deeply nested JSON: refused with a fault, not a stack overflow.
        for body in Self.bodies.suffix(2) {
            let r = vm.call("PUT", "/machine-config", body)
            #expect(r.status == 400 && !r.fault.isEmpty, "nested \(body.prefix(8)): \(r.status)")
        }
        // A client that disconnects mid-request, and one that sends a body and leaves.
        for _ in 0..<20 {
            let c = try HTTPConnection(socketPath: vm.socket)
            try c.send(Array("PATCH /vm HTTP/1.1\r\nContent-Len".utf8))
        }
        usleep(300_000)   // the server sees those 20 go (their slots free) in its next turns
        #expect(silent.closedByServer == false && half.closedByServer == false)
        // Stopped and continued (a frozen cgroup, a debugger) with connections open: the
        // kernel resumes the API thread's poll through restart_syscall.
        kill(vm.process.process.processIdentifier, SIGSTOP)
        usleep(200_000)
        kill(vm.process.process.processIdentifier, SIGCONT)
        expectStillWorking(vm, "after the hostile clients")
    }

    /// Large bodies make glibc shrink the API thread's heap, which opens
    /// /proc/sys/vm/overcommit_memory once: refused by the filter, never a kill.
    @Test func largeBodiesBeforeStart() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        let vm = try APIVM(socket: apiSocketPath("large"))
        defer { vm.process.stop() }
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        let keys = (0..<1500).map { "\"unknown_key_\($0)\": \($0)" }.joined(separator: ", ")
        for i in 0..<8 {
            let r = vm.call("PUT", "/machine-config", "{\(keys)}")
            #expect(r.status == 400 && r.fault.contains("unknown_key_0"), "request \(i): \(r.status) \(r.body.prefix(200))")
            #expect(r.body.utf8.count < 4096, "the fault names a few problems, not all 1,500: \(r.body.utf8.count) bytes")
        }
        #expect(vm.state() == "Not started", "stderr: \(vm.stderr)")
    }

    @Test func thousandSeededRandomRequests() throws {
        let seed = ProcessInfo.processInfo.environment["VOLT_API_SEED"].flatMap { UInt64($0) } ?? 20_261_204
        print("APIHostileClientTests seed \(seed) (VOLT_API_SEED=\(seed) replays it)")
        guard let vm = try tickerVM("random") else { return }
        defer { vm.process.stop() }
        var rng = SplitMix(state: seed)
        var connection = try HTTPConnection(socketPath: vm.socket)
        var statuses: [Int: Int] = [:]
        var fresh = false
        for i in 0..<1000 {
            let (bytes, complete) = Self.randomRequest(&rng)
            guard vm.process.process.isRunning else {
                Issue.record("seed \(seed): volt-vmm ended before request \(i): \(vm.exitStatus()) \(vm.stderr)")
                break
            }
            if fresh || connection.closedByServer || !complete || Int.random(in: 0..<10, using: &rng) == 0 {
                do { connection = try HTTPConnection(socketPath: vm.socket) } catch {
                    Issue.record("seed \(seed), request \(i): \(error); volt-vmm: \(vm.exitStatus(timeout: 5)) \(vm.stderr) \(vm.stdout.suffix(300))")
                    break
                }
            }
            // A request cut short, or one whose answer this client cannot frame (HEAD),
            // ends with this side's EOF: the server answers or closes at once instead of
            // waiting; the connection is not used again.
            fresh = !complete
            _ = try? connection.send(bytes, timeout: .seconds(5))
            if !complete { connection.shutdownWrite() }
            let got = Result { try connection.response(timeout: .seconds(5)) }
            guard case let .success(answer) = got, let r = answer else {
                #expect(!complete || connection.closedByServer, "seed \(seed), request \(i): no answer and not closed (\(got))")
                fresh = true
                statuses[0, default: 0] += 1
                continue
            }
            statuses[r.status, default: 0] += 1
            #expect([200, 204, 400, 404, 405, 413, 431, 501, 503].contains(r.status), "seed \(seed), request \(i): \(r.status)")
        }
        print("APIHostileClientTests statuses (0 = closed): \(statuses.sorted { $0.key < $1.key })")
        #expect(statuses[400, default: 0] > 100, "most random requests are refused with a fault: \(statuses)")
        expectStillWorking(vm, "seed \(seed)")
    }

    /// A request: a known or garbled method, path and body, sometimes cut short or
    /// mutated byte by byte; `complete` when its framing promises no more bytes. Never
    /// Ctrl+Alt+Del (that would end the VM on purpose).
    static func randomRequest(_ rng: inout SplitMix) -> (bytes: [UInt8], complete: Bool) {
        let methods = ["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD", "OPTIONS", "G\u{7f}T", "PUT PUT"]
        let method = methods.randomElement(using: &rng)!
        var path = paths.randomElement(using: &rng)!
        if Bool.random(using: &rng) { path += "?\(UInt32.random(in: 0...UInt32.max, using: &rng))" }
        var body = Array(bodies.randomElement(using: &rng)!.utf8)
        if Int.random(in: 0..<3, using: &rng) == 0, !body.isEmpty {
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                body[Int.random(in: 0..<body.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
        }
        let wrongLength = Int.random(in: 0..<8, using: &rng) == 0
        let length = wrongLength ? Int.random(in: 0...70_000, using: &rng) : body.count
        var head = "\(method) \(path) HTTP/1.\(Int.random(in: 0...1, using: &rng))\r\nHost: localhost\r\n"
        let withLength = Int.random(in: 0..<4, using: &rng) != 0
        if withLength { head += "Content-Length: \(length)\r\n" }
        let chunked = Int.random(in: 0..<10, using: &rng) == 0
        if chunked { head += "Transfer-Encoding: chunked\r\n" }
        var bytes = Array((head + "\r\n").utf8) + body
        let truncated = Int.random(in: 0..<10, using: &rng) == 0
        if truncated { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))) }
        if String(decoding: bytes, as: UTF8.self).contains("SendCtrlAltDel") { return (Array("GET / HTTP/1.1\r\n\r\n".utf8), true) }
        return (bytes, withLength && length == body.count && !chunked && !truncated && method != "HEAD")
    }
}
