import Foundation
import Testing
import VoltTestSupport

/// volt-net-worker as a process (in a test network namespace with a TAP): jailed before
/// its first vhost-user message, killed by SIGSYS on a forbidden call, unable to open
/// files or create sockets.
@Suite(.serialized) struct SandboxTests {
    static let prerequisite = "root, /dev/net/tun and ip(8)"

    /// A worker on the namespace's TAP; `body` gets it, its connected socket and the namespace.
    func withWorker(_ extra: [String], multiQueue: Bool = false,
                    _ body: (Background, SandboxInspection.Peer, NetNamespace) throws -> Void) throws {
        let ns = try NetNamespace(multiQueue: multiQueue)
        defer { ns.delete() }
        let socket = IntegrationTests.socketPath("sandbox")
        unlink(socket)
        defer { unlink(socket) }
        let worker = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, IntegrationTests.worker,
                                                     "--socket-path", socket, "--tap", ns.tap] + extra)
        defer { worker.stop() }
        let peer = try #require(SandboxInspection.connect(socket), "the worker never listened: \(worker.stderr)")
        try withExtendedLifetime(peer) { try body(worker, peer, ns) }
    }

    /// Two queue pairs on a multiqueue TAP: pair 1's queue is detached (TUNSETQUEUE) under
    /// the filter as the pair threads start.
    @Test func jailedBeforeTheFirstReply() throws {
        guard TestEnvironment.require(NetNamespace.available, Self.prerequisite) else { return }
        try withWorker(["--num-queue-pairs", "2"], multiQueue: true) { w, peer, ns in
            #expect(SandboxInspection.handshake(peer), "no GET_FEATURES reply: \(w.stderr)")
            let pid = w.process.processIdentifier
            // `ip netns exec` already gives a new mount namespace: the empty root shows that one.
            var reference = Dictionary(uniqueKeysWithValues: ["ipc", "uts"].map {
                ($0, SandboxInspection.namespace($0, of: getpid()) ?? "?")
            })
            reference["net"] = SandboxInspection.namedNetworkNamespace(ns.name) ?? "?"
            let problems = SandboxInspection.jailProblems(pid: pid, reference: reference)
            #expect(problems.isEmpty, "\(problems)")
            #expect(SandboxInspection.softLimit("Max file size", of: pid) == "0")
            // stdio, socket, 2 TAPs, 2 x 8 regions, 1 per pair (its thread's wake eventfd),
            // 3 per queue (5), 16 spare.
            #expect(SandboxInspection.softLimit("Max open files", of: pid) == "55")
            #expect(SandboxInspection.status(pid)["Threads"] == "4", "main, 2 pairs, signals")
            peer.close()
            #expect(w.wait(timeout: 10) && w.process.terminationStatus == 0, "stderr: \(w.stderr)")
        }
    }

    @Test func forbiddenSyscallOnSetOwnerDiesWithSIGSYS() throws {
        guard TestEnvironment.require(NetNamespace.available, Self.prerequisite) else { return }
        try withWorker(["--fault-forbidden-syscall"]) { w, peer, _ in
            #expect(SandboxInspection.handshake(peer))
            SandboxInspection.send(peer, request: SandboxInspection.setOwner)
            #expect(w.wait(timeout: 10))
            #expect(w.process.terminationReason == .uncaughtSignal && w.process.terminationStatus == SIGSYS,
                    "status \(w.process.terminationStatus), stderr: \(w.stderr)")
        }
    }

    /// Landlock and the empty root refuse every path on their own (the probe adds openat
    /// and mkdir to the filter for this); socket() is killed by seccomp.
    @Test func cannotOpenFilesNorCreateSockets() throws {
        guard TestEnvironment.require(NetNamespace.available, Self.prerequisite) else { return }
        try withWorker(["--probe-sandbox"]) { w, _, _ in
            #expect(w.wait(timeout: 10))
            #expect(w.process.terminationReason == .uncaughtSignal && w.process.terminationStatus == SIGSYS)
            let lines = w.stderr.split(separator: "\n").map(String.init)
            #expect(lines.count == 6, "\(lines)")
            #expect(!lines.contains { $0.hasSuffix("-> ok") }, "\(lines)")
            #expect(lines.contains("probe: open /etc/passwd -> errno \(ENOENT) ENOENT"))
            #expect(lines.contains("probe: open / (read dir) -> errno \(EACCES) EACCES"))
            #expect(lines.last == "probe: socket AF_INET -> (expect SIGSYS)")
        }
    }
}
