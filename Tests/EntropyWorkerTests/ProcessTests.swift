import Foundation
import IPC
import Testing
import TestFrontend
import VoltTestSupport

/// volt-rng-worker as a standalone process (spec back-end conventions), driven by the
/// test frontend as a guest driver: random bytes, the rate limit, faults, exit codes.
@Suite(.serialized) struct ProcessTests {
    static var worker: String { TestEnvironment.product("volt-rng-worker") }

    final class Worker: ListeningWorker {
        init(dir: URL, arguments: [String] = [], launcher: [String] = []) throws {
            try super.init(executable: ProcessTests.worker, dir: dir, socketName: "rng.sock", arguments: arguments, launcher: launcher)
        }
    }

    static func withWorker(_ arguments: [String] = [], _ body: (Worker, VhostUserTestFrontend) throws -> Void) throws {
        let dir = try ListeningWorker.tempDir("volt-rng")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try Worker(dir: dir, arguments: arguments)
        let fe = try VhostUserTestFrontend(socketPath: w.socket, options: TestFrontendOptions(memorySize: 16 << 20, queueSize: 64))
        try fe.start()
        try body(w, fe)
    }

    @Test func printCapabilitiesAndHelp() throws {
        let r = try TestEnvironment.run(Self.worker, ["--print-capabilities"], timeout: 10)
        #expect(r.status == 0 && r.stdout == "{\"type\": \"rng\"}\n")
        let h = try TestEnvironment.run(Self.worker, ["--help"], timeout: 10)
        #expect(h.status == 0 && h.stdout.contains("--bandwidth") && h.stdout.contains("--socket-path"))
    }

    @Test func badArgumentsExitTwoWithOneLine() throws {
        for args in [[String](), ["--socket-path", "/tmp/x", "--bandwidth", "size=0,refill-ms=1"], ["--fd", "3", "--fault", "drop,percent=1"],
                     ["--fd", "3", "--bogus"]] {
            let r = try TestEnvironment.run(Self.worker, args, timeout: 10)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("volt-rng-worker: error: ") && r.stderr.contains("fix:"),
                    "\(args): \(r.stderr)")
        }
    }

    @Test func servesRandomBytesAndExitsZeroWhenTheFrontendLeaves() throws {
        try Self.withWorker { w, fe in
            var all: [UInt8] = []
            for _ in 0..<16 {
                let s = try fe.submit(queue: 0, [.writable(4096)])
                try fe.kick(queue: 0)
                let c = try fe.waitForCompletion(of: s)
                #expect(c.length == 4096)
                all += try fe.read(s.buffers[0])
                fe.release(c)
            }
            // 64 KiB of uniform bytes: every value, each near 256 times.
            var counts = [Int](repeating: 0, count: 256)
            for b in all { counts[Int(b)] += 1 }
            #expect(counts.allSatisfy { (150...370).contains($0) }, "byte counts \(counts.min()!)...\(counts.max()!)")
            fe.disconnect()
            #expect(w.exitStatus() == 0)
            let err = w.errorOutput
            #expect(err.contains("front-end disconnected") && err.contains("requests=16") && err.contains("bytes=65536"), "\(err)")
        }
    }

    /// 32 KiB per 100 ms: once the initial bucket is spent, 320 KiB take 1 s. The
    /// driver keeps 4 requests of 4 KiB in flight.
    @Test func rateLimitHoldsWithinTenPercent() throws {
        try Self.withWorker(["--bandwidth", "size=32768,refill-ms=100"]) { _, fe in
            func transfer(_ bytes: Int) throws {
                var inFlight: [Submission] = []
                var submitted = 0, received = 0
                while received < bytes {
                    while inFlight.count < 4 && submitted < bytes {
                        inFlight.append(try fe.submit(queue: 0, [.writable(4096)]))
                        submitted += 4096
                    }
                    try fe.kick(queue: 0)
                    for c in try fe.waitForUsed(queue: 0, timeout: 10) {
                        received += Int(c.length)
                        inFlight.removeAll { $0 == c.submission }
                        fe.release(c)
                    }
                }
            }
            try transfer(32768)   // the bucket starts full
            let start = DispatchTime.now().uptimeNanoseconds
            try transfer(327_680)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let rate = 327_680 / seconds
            #expect(rate <= 327_680 * 1.10 && rate >= 327_680 * 0.90, "\(Int(rate)) B/s for a limit of 327680 B/s (\(seconds) s)")
        }
    }

    @Test func crashFaultEndsTheProcessAfterNRequests() throws {
        try Self.withWorker(["--fault", "crash,after=3"]) { w, fe in
            for _ in 0..<3 { _ = try fe.submit(queue: 0, [.writable(64)]) }
            try fe.kick(queue: 0)
            #expect(w.exitStatus() == 99, "stderr: \(w.errorOutput)")
        }
    }

    @Test func sigtermExitsZero() throws {
        try Self.withWorker { w, _ in
            w.process.terminate()
            #expect(w.exitStatus() == 0)
            #expect(w.errorOutput.contains("signal 15: exiting"))
        }
    }
}
