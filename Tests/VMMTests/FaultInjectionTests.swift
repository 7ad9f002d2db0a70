import Foundation
import IPC
import Testing
import VoltTestSupport
@testable import VMM
@testable import VMMMain

/// `volt-vmm run --fault DEVICE:KIND`: each blk kind observed by the virtio_blk guest.
/// In DiskWorkerTests' serialized suite (no other VM's workers running meanwhile).
extension DiskWorkerTests {
    private func runWithFault(_ fault: String, _ extra: [String] = [], cmdline: String = "blk.seed=5 blk.sectors=64",
                              name: String) throws -> (TestEnvironment.Result, metrics: String, disk: String, dir: URL)? {
        guard let guest = guest() else { return nil }
        let dir = try makeTemporaryDirectory("fault-\(name)")
        let disk = image(dir)
        let metrics = dir.appendingPathComponent("metrics.jsonl").path
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--log-level", "info", "--disk", "path=\(disk)",
                                            "--metrics", metrics, "--fault", "disk0:\(fault)", "--cmdline", cmdline] + extra,
                                           timeout: 120)
        let last = (try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        return (r, last, disk, dir)
    }

    private func faultsInjected(_ metricsLine: String) -> Int? {
        guard let range = metricsLine.range(of: #""faults_injected":[0-9]+"#, options: .regularExpression) else { return nil }
        return Int(metricsLine[range].split(separator: ":")[1])
    }

    @Test func eioSectorsFailsOnlyThoseRequests() throws {
        guard let (r, metrics, _, dir) = try runWithFault("eio,sectors=8-15", name: "sectors") else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("error status=1 type=1(write) sector=8 sectors=8"), "\(r.stdout)")
        #expect(r.stdout.contains("error status=1 type=0(read) sector=8 sectors=8"), "\(r.stdout)")
        #expect(r.stdout.components(separatedBy: "error status=").count - 1 == 2, "no other request fails: \(r.stdout)")
        #expect(r.stdout.contains("verified=56 mismatches=0"), "\(r.stdout)")
        #expect(faultsInjected(metrics) == 2, "\(metrics)")
    }

    @Test func eioRate100FailsAllIO() throws {
        guard let (r, metrics, _, dir) = try runWithFault("eio,rate=100", name: "rate") else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "stderr: \(r.stderr)")
        // 64 sectors in 8-sector requests: 8 writes and 8 reads, all failed.
        #expect(r.stdout.components(separatedBy: "error status=1").count - 1 == 16, "\(r.stdout)")
        #expect(r.stdout.contains("wrote=0") && r.stdout.contains("verified=0"), "\(r.stdout)")
        #expect(faultsInjected(metrics) == 16, "\(metrics)")
    }

    @Test func delayedRequestsStillComplete() throws {
        guard let (r, metrics, disk, dir) = try runWithFault("delay,ms=20", name: "delay") else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("wrote=64 flushed=yes verified=64 mismatches=0"), "\(r.stdout)")
        #expect((faultsInjected(metrics) ?? 0) > 0, "\(metrics)")
        #expect(try BlockPattern.mismatches(image: disk, seed: 5, sectors: 0..<64).isEmpty)
    }

    @Test func crashAfterNIsRestarted() throws {
        guard let (r, metrics, disk, dir) = try runWithFault("crash,after=5", cmdline: "blk.seed=6 blk.sectors=64",
                                                             name: "crash") else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("fault injected: crash after"), "\(r.stderr)")
        #expect(r.stderr.contains("device state replayed"), "the worker was restarted: \(r.stderr)")
        #expect(r.stdout.contains("wrote=64 flushed=yes verified=64 mismatches=0"), "\(r.stdout)")
        #expect(!metrics.contains("\"restarts\":0"), "\(metrics)")
        #expect(try BlockPattern.mismatches(image: disk, seed: 6, sectors: 0..<64).isEmpty)
    }

    @Test func syscallFaultIsASeccompKill() throws {
        guard let (r, _, _, dir) = try runWithFault("syscall", ["--restart=never"], name: "syscall") else { return }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("blk worker for disk0 killed: seccomp violation (SIGSYS), system call 41 (socket)"), "\(r.stderr)")
    }
}

/// `--fault` parsing in volt-vmm: every mistake is a usage error (exit 2) naming the fix.
@Suite struct FaultOptionTests {
    /// Disks, then NICs, then entropy devices, as volt-vmm orders them.
    private func apply(_ faults: [String], disks: Int = 1, nets: Int = 1, rngs: Int = 0) throws -> ([DiskSpec], [NetSpec], [EntropySpec]) {
        var devices: [VirtioDeviceSpec] = (0..<disks).map { .disk(DiskSpec(path: "/d\($0).img")) }
        devices += try (0..<nets).map { _ in .net(try NetSpec(parsing: "tap=vm0")) }
        devices += (0..<rngs).map { _ in .entropy(EntropySpec()) }
        try FaultOption.apply(faults, to: &devices)
        return (devices.compactMap { if case let .disk(d) = $0 { d } else { nil } },
                devices.compactMap { if case let .net(n) = $0 { n } else { nil } },
                devices.compactMap { if case let .entropy(e) = $0 { e } else { nil } })
    }

    @Test func faultsGoToTheirDevicesWorker() throws {
        let (d, n, r) = try apply(["disk0:eio,rate=10", "net2:drop,percent=5,seed=4", "disk1:syscall", "rng3:zero,percent=50"],
                                  disks: 2, rngs: 1)
        #expect(d[0].faults == [FaultSpec(kind: .eioRate(percent: 10), seed: 0)])
        #expect(d[1].faults == [FaultSpec(kind: .syscall, seed: 1)], "the device index is the default seed")
        #expect(n[0].faults == [FaultSpec(kind: .drop(percent: 5), seed: 4)], "an explicit seed is kept")
        #expect(r[0].faults == [FaultSpec(kind: .zero(percent: 50), seed: 3)])
    }

    @Test(arguments: ["eio,rate=5", "disk:eio,rate=5", "disk01:eio,rate=5", "disk1:eio,rate=5", "net0:drop,percent=1",
                      "net1:eio,rate=5", "disk0:drop,percent=5", "disk0:eio,rate=101", "disk0:", "disk0:crash",
                      "vhost-user-blk2:crash,after=1", "disk0:delay,ms=abc", "net1:corrupt,percent=1,x=2",
                      "rng2:crash,after=1", "net1:zero,percent=5"])
    func badFaultsAreUsageErrors(_ text: String) throws {
        do {
            _ = try apply([text])
            Issue.record("\(text) was accepted")
        } catch let error as ConfigError {
            #expect(error.exitCode == 2, "\(error)")
            #expect(!"\(error)".contains("\n"), "one line: \(error)")
        }
    }
}
