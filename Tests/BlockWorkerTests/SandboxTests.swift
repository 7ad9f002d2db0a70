import Foundation
import Testing
import VoltTestSupport

/// volt-blk-worker as a process: jailed before its first vhost-user message, killed by
/// SIGSYS on a forbidden call, unable to open files or create sockets.
@Suite(.serialized) struct SandboxTests {
    typealias Worker = IntegrationTests.Worker

    /// A worker on a 1 MiB image in a fresh folder; `body` gets it and its connected socket.
    func withWorker(_ extra: [String], launcher: [String] = [],
                    _ body: (Worker, SandboxInspection.Peer) throws -> Void) throws {
        let dir = try IntegrationTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        // Open to any user, for the unprivileged worker.
        chmod(dir.path, 0o777)
        chmod(image, 0o666)
        let w = try Worker(dir: dir, arguments: ["--path", image] + extra, launcher: launcher)
        let peer = try #require(SandboxInspection.connect(w.socket), "the worker never listened: \(w.errorOutput)")
        try withExtendedLifetime(peer) { try body(w, peer) }
    }

    @Test func jailedBeforeTheFirstReply() throws {
        try withWorker([]) { w, peer in
            #expect(SandboxInspection.handshake(peer), "no GET_FEATURES reply: \(w.errorOutput)")
            let pid = w.process.processIdentifier
            let reference = Dictionary(uniqueKeysWithValues: ["mnt", "ipc", "uts", "net"].map {
                ($0, SandboxInspection.namespace($0, of: getpid()) ?? "?")
            })
            let problems = SandboxInspection.jailProblems(pid: pid, reference: reference)
            #expect(problems.isEmpty, "\(problems)")
            // 1 queue: stdio, socket, image, 2 x 8 regions, 4 per queue (its thread's wake
            // eventfd; kick, call, err), 16 spare.
            #expect(SandboxInspection.softLimit("Max open files", of: pid) == "41")
            #expect(SandboxInspection.softLimit("Max file size", of: pid) == "unlimited")
            peer.close()
            #expect(w.exitStatus() == 0, "stderr: \(w.errorOutput)")
        }
    }

    /// As nobody, without capabilities: the sandbox adds a user namespace of its own.
    @Test func unprivilegedWorkerGetsAUserNamespace() throws {
        guard TestEnvironment.require(getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                                      "root and setpriv(1) to start the worker as nobody") else { return }
        let launcher = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--inh-caps=-all", "--bounding-set=-all"]
        try withWorker([], launcher: launcher) { w, peer in
            #expect(SandboxInspection.handshake(peer), "no GET_FEATURES reply: \(w.errorOutput)")
            let pid = w.process.processIdentifier
            let reference = Dictionary(uniqueKeysWithValues: ["user", "mnt", "ipc", "uts", "net"].map {
                ($0, SandboxInspection.namespace($0, of: getpid()) ?? "?")
            })
            let problems = SandboxInspection.jailProblems(pid: pid, reference: reference)
            #expect(problems.isEmpty, "\(problems)")
            #expect(SandboxInspection.status(pid)["Uid"]?.hasPrefix("65534") == true)
            peer.close()
            #expect(w.exitStatus() == 0, "stderr: \(w.errorOutput)")
        }
    }

    @Test func noSandboxIsOnlyAnOption() throws {
        try withWorker(["--no-sandbox"]) { w, peer in
            #expect(SandboxInspection.handshake(peer))
            let st = SandboxInspection.status(w.process.processIdentifier)
            #expect(st["Seccomp"] == "0" && st["NoNewPrivs"] == "0")
        }
    }

    @Test func forbiddenSyscallOnSetOwnerDiesWithSIGSYS() throws {
        try withWorker(["--fault-forbidden-syscall"]) { w, peer in
            #expect(SandboxInspection.handshake(peer))
            SandboxInspection.send(peer, request: SandboxInspection.setOwner)
            #expect(w.exitStatus() == SIGSYS && w.process.terminationReason == .uncaughtSignal,
                    "status \(w.process.terminationStatus), stderr: \(w.errorOutput)")
        }
    }

    /// Landlock and the empty root refuse every path on their own (the probe adds openat
    /// and mkdir to the filter for this); socket() is killed by seccomp.
    @Test func cannotOpenFilesNorCreateSockets() throws {
        try withWorker(["--probe-sandbox"]) { w, _ in
            #expect(w.exitStatus() == SIGSYS && w.process.terminationReason == .uncaughtSignal)
            let lines = w.errorOutput.split(separator: "\n").map(String.init)
            #expect(lines.count == 6, "\(lines)")
            #expect(!lines.contains { $0.hasSuffix("-> ok") }, "\(lines)")
            #expect(lines.contains("probe: open /etc/passwd -> errno \(ENOENT) ENOENT"))
            #expect(lines.contains("probe: open / (read dir) -> errno \(EACCES) EACCES"))
            #expect(lines.contains("probe: open /proc/self/status -> errno \(ENOENT) ENOENT"))
            #expect(lines.last == "probe: socket AF_INET -> (expect SIGSYS)")
        }
    }
}
