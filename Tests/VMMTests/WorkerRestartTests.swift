import Foundation
import Testing
import VoltTestSupport
@testable import VMM
@testable import VMMMain

/// `--restart=on` (the default): a spawned worker that dies is respawned and the device
/// state replayed while the guest keeps running; a worker dying faster than the
/// restart budget allows stops the VM.
/// In DiskWorkerTests' serialized suite: those tests check that no worker is left
/// running, which a concurrent VM of ours would upset.
extension DiskWorkerTests {
    /// Kills only this test's worker: its --serial is unique.
    static func killWorker(serial: String) {
        _ = try? TestEnvironment.run("/usr/bin/pkill", ["-KILL", "-f", "volt-blk-worker --fd 3 .*--serial \(serial)"])
    }

    @Test func blockIOSurvivesRepeatedWorkerKills() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("restart")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = image(dir, size: 64 << 20)
        let serial = "rs-crash-\(getpid())"
        let metrics = dir.appendingPathComponent("metrics.jsonl").path
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--log-level", "info",
                                            "--disk", "path=\(disk),serial=\(serial)", "--metrics", metrics,
                                            "--cmdline", "blk.seed=33 blk.start=5 blk.sectors=3000"],
                                           whenOutput: ("capacity=", {
            // Three kills spread over the write, flush and read phases.
            Thread.detachNewThread {
                for delay in [1.5, 3.0, 3.0] {
                    Thread.sleep(forTimeInterval: delay)
                    Self.killWorker(serial: serial)
                }
            }
        }), timeout: 240)
        #expect(!r.timedOut)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("wrote=3000 flushed=yes verified=3000 mismatches=0"), "\(r.stdout)")
        #expect(!r.stdout.contains("error status="), "\(r.stdout)")
        let restarts = r.stderr.components(separatedBy: "device state replayed").count - 1
        #expect(restarts >= 3, "every kill is followed by a restart: \(r.stderr)")
        let last = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("\"restarts\":\(restarts)"), "the metrics count the restarts: \(last)")
        #expect(r.stderr.contains("blk worker for disk0") && r.stderr.contains("killed by signal 9"), "\(r.stderr)")
        #expect(try BlockPattern.mismatches(image: disk, seed: 33, sectors: 5..<3005).isEmpty, "acknowledged writes are on the host image")
    }

    @Test func workerDyingFasterThanTheBudgetStopsTheVM() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("restart-budget")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = image(dir, size: 64 << 20)
        let serial = "rs-budget-\(getpid())"
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", "path=\(disk),serial=\(serial)",
                                            "--cmdline", "blk.sectors=100000"],
                                           whenOutput: ("capacity=", {
            Thread.detachNewThread {
                // Well over 5 deaths in a few seconds: each new incarnation is killed.
                for _ in 0..<100 {
                    Self.killWorker(serial: serial)
                    Thread.sleep(forTimeInterval: 0.1)
                }
            }
        }), timeout: 120)
        #expect(!r.timedOut, "volt-vmm must not hang when restarts are exhausted")
        #expect(r.status == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("blk worker for disk0") && r.stderr.contains("restarted 5 times within 60 s, giving up"), "\(r.stderr)")
    }

    @Test func budgetBacksOffAndRefillsAfterTheWindow() {
        var budget = RestartBudget(policy: RestartPolicy())
        let second: UInt64 = 1_000_000_000
        #expect((0..<5).map { budget.admit(now: UInt64($0) * second) } == [10, 20, 40, 80, 160])
        #expect(budget.admit(now: 5 * second) == nil, "a sixth restart within 60 s is refused")
        #expect(budget.admit(now: 60 * second + 1) == 160, "the first restart left the window: one more is allowed")
        var slow = RestartBudget(policy: RestartPolicy(maxRestarts: 20))
        let delays = (0..<12).map { slow.admit(now: UInt64($0)) }
        #expect(delays.last == 1000, "backoff is capped at 1 s")
    }

    @Test func restartFlagParses() throws {
        #expect(try RunCommand.parse(["--kernel", "k"]).restart == .on)
        #expect(try RunCommand.parse(["--kernel", "k", "--restart=never"]).restart == .never)
        #expect(throws: (any Error).self) { try RunCommand.parse(["--kernel", "k", "--restart=sometimes"]) }
    }
}
