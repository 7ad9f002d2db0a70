import Foundation
import Sandbox
import Testing
import TestFrontend
import VoltTestSupport
@testable import EntropyWorker
@testable import WorkerCore

/// volt-rng-worker jailed like every worker, with nothing added to the base allowlist:
/// no file, no socket, no ioctl.
@Suite(.serialized) struct SandboxTests {
    typealias Worker = ProcessTests.Worker

    func withWorker(_ extra: [String], _ body: (Worker, SandboxInspection.Peer) throws -> Void) throws {
        let dir = try ListeningWorker.tempDir("volt-rng")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try Worker(dir: dir, arguments: extra)
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
            #expect(SandboxInspection.jailProblems(pid: pid, reference: reference).isEmpty)
            // stdio, socket, 2 x 8 regions, the queue thread's wake eventfd, 3 for the queue, 16 spare.
            #expect(SandboxInspection.softLimit("Max open files", of: pid) == "40")
            #expect(SandboxInspection.softLimit("Max file size", of: pid) == "0")
            #expect(SandboxInspection.status(pid)["Threads"] == "3", "main, queue thread, signals")
            peer.close()
            #expect(w.exitStatus() == 0, "stderr: \(w.errorOutput)")
        }
    }

    @Test func forbiddenSyscallFaultDiesWithSIGSYS() throws {
        try withWorker(["--fault", "syscall"]) { w, peer in
            #expect(SandboxInspection.handshake(peer))
            SandboxInspection.send(peer, request: SandboxInspection.setOwner)
            #expect(w.exitStatus() == SIGSYS && w.process.terminationReason == .uncaughtSignal, "stderr: \(w.errorOutput)")
        }
    }

    @Test func cannotOpenFilesNorCreateSockets() throws {
        try withWorker(["--probe-sandbox"]) { w, _ in
            #expect(w.exitStatus() == SIGSYS && w.process.terminationReason == .uncaughtSignal)
            let lines = w.errorOutput.split(separator: "\n").map(String.init)
            #expect(!lines.contains { $0.hasSuffix("-> ok") }, "\(lines)")
            #expect(lines.contains("probe: open /etc/passwd -> errno \(ENOENT) ENOENT"))
            #expect(lines.last == "probe: socket AF_INET -> (expect SIGSYS)")
        }
    }

    @Test func theAllowlistIsTheBaseAndNothingElse() {
        let rules = SeccompPolicy.rules(socket: 3)
        #expect(Set(rules.map(\.syscall)) == Set(WorkerPolicy.rules(socket: 3, device: DeviceSandbox(seccomp: [], heldFDs: 0, maxFileSize: 0)).map(\.syscall)))
        let names = Set(rules.filter(\.allows).map(\.syscall))
        #expect(names.isDisjoint(with: BasePolicy.neverAllowed))
        #expect(!names.contains("ioctl") && !names.contains("openat") && !names.contains("pread64"))
        #expect(rules.filter { BasePolicy.neverAllowed.contains($0.syscall) }.map(\.description) == ["openat if arg2 == 0x80000 -> errno 13"])
        #expect(Sandbox.unknownSyscalls(rules).isEmpty && rules.allSatisfy { !$0.why.isEmpty })
        // The figure docs/security.md reports.
        #expect(Sandbox.allowedSyscallCount(rules) == 30)
        #expect(rules.count == 37, "filter entries")
    }
}

/// A hostile front-end and guest against the jailed worker: it may refuse and exit 1,
/// never dies by a signal, and exits once the front-end is gone.
@Suite struct HostileFrontendTests {
    @Test(arguments: 1...3)
    func aHostileFrontendNeverCrashesTheWorker(seed: Int) throws {
        let dir = try ListeningWorker.tempDir("volt-rng")
        defer { try? FileManager.default.removeItem(at: dir) }
        var maker = HostileFrontend.MessageMaker(seed: UInt64(seed))
        var refused = 0, returned = 0
        for round in 0..<24 {
            let worker = try ProcessTests.Worker(dir: dir)
            switch round % 3 {
            case 1: try? HostileFrontend.chaosAfterStart(worker.socket, &maker)
            case 2: returned += (try? HostileFrontend.guestChaos(worker.socket, &maker)) ?? 0
            default: try HostileFrontend.protocolChaos(worker.socket, &maker)
            }
            maker.closeAll()
            let status = worker.exitStatus(timeout: 10)
            #expect(status != nil, "seed \(seed) round \(round): the worker did not exit after the front-end left")
            #expect(worker.process.terminationReason == .exit, "seed \(seed) round \(round): killed by signal \(status ?? -1): \(worker.errorOutput)")
            if status != 0 { refused += 1 }
            try? FileManager.default.removeItem(atPath: worker.socket)
        }
        #expect(refused > 0, "the generator is too tame")
        #expect(returned > 0, "no hostile chain reached the worker's queue")
    }
}

/// A worker whose stderr is a regular file (an operator's `2>vm.log`) still logs: its
/// file-size limit leaves room past the file's size instead of killing it (SIGXFSZ) at
/// the first line.
@Suite struct LogFileTests {
    @Test func aWorkerLoggingToAFileIsNotKilled() throws {
        let dir = try ListeningWorker.tempDir("volt-rng")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("worker.log").path
        try Data("earlier lines\n".utf8).write(to: URL(fileURLWithPath: log))
        let w = try ProcessTests.Worker(dir: dir, launcher: ["/bin/sh", "-c", "exec \"$@\" 2>>\(log)", "sh"])
        let peer = try #require(SandboxInspection.connect(w.socket), "the worker never listened")
        #expect(SandboxInspection.handshake(peer))
        let limit = SandboxInspection.softLimit("Max file size", of: w.process.processIdentifier).flatMap { UInt64($0) }
        #expect(limit == 14 + 16 << 20, "the log's size plus 16 MiB: \(limit ?? 0)")
        peer.close()
        #expect(w.exitStatus() == 0 && w.process.terminationReason == .exit)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("volt-rng-worker: front-end disconnected"))
    }
}
