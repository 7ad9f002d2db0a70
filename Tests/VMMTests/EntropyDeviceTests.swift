import Foundation
import IPC
import Testing
import VoltTestSupport
@testable import VMM

/// `--entropy`: volt-vmm spawns a jailed volt-rng-worker, the virtio_rng test guest reads
/// from it on KVM and reports byte statistics and its own timing (TSC).
@Suite(.serialized) struct EntropyDeviceTests {
    func guest() -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let guest = TestEnvironment.guest("virtio_rng") else {
            Issue.record("test guest virtio_rng did not build (make -C guests)")
            return nil
        }
        return guest
    }

    /// The guest's `key=value` fields from its statistics line.
    static func stats(_ out: String) -> [String: Int] {
        guard let line = out.split(whereSeparator: \.isNewline).first(where: { $0.contains("virtio_rng: bytes=") }) else { return [:] }
        var fields: [String: Int] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=")
            if kv.count == 2, let n = Int(kv[1]) { fields[String(kv[0])] = n }
        }
        return fields
    }

    @Test func guestReadsRandomBytesFromAJailedWorker() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("rng")
        defer { try? FileManager.default.removeItem(at: dir) }
        let metrics = dir.appendingPathComponent("metrics.jsonl").path
        // rate= keeps the guest reading long enough to look at the worker, whose pid
        // volt-vmm logs ("spawned volt-rng-worker pid N").
        let vmm = try Background(TestEnvironment.voltVMM, ["run", "--kernel", guest, "--log-level", "info", "--entropy", "rate=65536",
                                                           "--metrics", metrics, "--cmdline", "rng.bytes=131072"])
        var jail: [String: String] = [:]
        // stdout and stderr are read apart: wait for both lines.
        if vmm.waitFor("virtio_rng: vendor=", timeout: 60), vmm.waitFor("spawned volt-rng-worker pid", timeout: 10),
           let pid = TestEnvironment.spawnedWorkerPIDs(vmm.stderr).first {
            jail = SandboxInspection.status(pid)
        }
        let finished = vmm.wait(timeout: 60)
        let r = (status: finished ? vmm.process.terminationStatus : vmm.stop(), stdout: vmm.stdout, stderr: vmm.stderr)
        #expect(finished, "the guest finished within 60 s")
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST virtio_rng: ok"), "\(r.stdout)")
        let s = Self.stats(r.stdout)
        #expect(s["bytes"] == 131072 && s["distinct"] == 256 && s["zero_buffers"] == 0 && s["short_reads"] == 0, "\(s)")
        // chi-square over 256 byte values has 255 degrees of freedom: far below 400 for random data.
        #expect((s["chi2x100"] ?? .max) < 40_000, "\(s)")
        #expect(r.stderr.contains("spawned volt-rng-worker"), "\(r.stderr)")
        #expect(jail["Seccomp"] == "2" && jail["NoNewPrivs"] == "1" && jail["CapEff"] == "0000000000000000", "jailed: \(jail)")
        let last = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("\"rng0\"") && last.contains("\"bytes\":131072"), "the metrics count the bytes: \(last)")
        for pid in TestEnvironment.spawnedWorkerPIDs(r.stderr) { #expect(kill(pid, 0) != 0, "worker \(pid) is reaped") }
    }

    /// 64 KiB/s with a one-second bucket: 192 KiB take 2 s after the first (full) 64 KiB,
    /// as the guest times it with its TSC.
    @Test func theRateLimitHoldsWithinTenPercent() throws {
        guard let guest = guest() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--entropy", "rate=65536", "--cmdline", "rng.bytes=196608"], timeout: 60)
        #expect(r.status == 0 && r.stdout.contains("virtio_rng: ok"), "\(r.stdout) \(r.stderr)")
        let elapsed = Double(Self.stats(r.stdout)["elapsed_us"] ?? 0) / 1e6
        #expect(elapsed >= 1.8 && elapsed <= 2.2, "\(elapsed) s for 128 KiB beyond the bucket at 64 KiB/s; \(r.stdout)")
    }

    /// A worker that dies after every 12 requests (counted per turn of its queue thread) is
    /// restarted each time; the guest gets every byte of its 48 requests.
    @Test func aCrashingWorkerIsRestartedAndTheGuestFinishes() throws {
        guard let guest = guest() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--log-level", "info", "--entropy", "on",
                                            "--fault", "rng0:crash,after=12", "--cmdline", "rng.bytes=49152 rng.chunk=1024"], timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("virtio_rng: ok") && Self.stats(r.stdout)["bytes"] == 49152, "\(r.stdout)")
        let restarts = r.stderr.components(separatedBy: "device state replayed").count - 1
        #expect(restarts >= 2, "48 requests, a death every 12 or so: \(r.stderr)")
        #expect(r.stderr.contains("rng worker for rng0") && r.stderr.contains("exited with status 99"), "\(r.stderr)")
    }

    @Test(arguments: [("rate=0", "--entropy"), ("burst=5", "burst= needs rate="), ("rate=10,bogus=1", "unknown key 'bogus'"),
                      ("off", "--entropy")])
    func badEntropySpecsAreUsageErrors(_ spec: String, _ message: String) throws {
        guard let guest = guest() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--entropy", spec])
        #expect(r.status == 2 && r.stderr.contains(message), "\(spec): \(r.stderr)")
    }

    @Test func specsBecomeTokenBuckets() throws {
        #expect(try EntropySpec(parsing: "on") == EntropySpec())
        let s = try EntropySpec(parsing: "rate=4096,burst=65536,ops=10")
        #expect(s.bandwidth == TokenBucketSpec(size: 4096, refillMilliseconds: 1000, oneTimeBurst: 65536))
        #expect(s.ops == TokenBucketSpec(size: 10, refillMilliseconds: 1000))
    }

    @Test func theConfigFileTakesAnEntropyDevice() throws {
        let file = try VMConfigFile.parse(Array(#"{"kernel": "k", "entropy": {"rate": 1024, "ops": 5}}"#.utf8), file: "vm.json")
        #expect(file.entropy == EntropySpec(bandwidth: TokenBucketSpec(size: 1024, refillMilliseconds: 1000),
                                             ops: TokenBucketSpec(size: 5, refillMilliseconds: 1000)))
        #expect(try VMConfigFile.parse(Array(#"{"entropy": {}}"#.utf8), file: "vm.json").entropy == EntropySpec())
        #expect(throws: ConfigProblems.self) { try VMConfigFile.parse(Array(#"{"entropy": {"rate": -1, "speed": 2}}"#.utf8), file: "vm.json") }
    }
}
