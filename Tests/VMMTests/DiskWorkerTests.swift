import Foundation
import Testing
import VoltTestSupport

/// `--disk`: volt-vmm spawns one volt-blk-worker per disk (socketpair + image fd), the
/// virtio_blk test guest drives it on KVM, and the host checks the image afterwards.
@Suite(.serialized) struct DiskWorkerTests {
    func guest() -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let guest = TestEnvironment.guest("virtio_blk") else {
            Issue.record("test guest virtio_blk did not build (make -C guests)")
            return nil
        }
        return guest
    }

    func image(_ dir: URL, _ name: String = "disk.img", size: Int = 8 << 20) -> String {
        let path = dir.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(count: size))
        return path
    }

    @Test func guestIOThroughASpawnedWorker() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("disk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = image(dir)
        let second = image(dir, "second.img", size: 1 << 20)
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--log-level", "info",
                                            "--disk", "path=\(disk)", "--disk", "path=\(second),ro=on",
                                            "--cmdline", "blk.seed=21 blk.start=7 blk.sectors=500 blk.reset blk.outofrange"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("capacity=16384"))
        #expect(r.stdout.contains("wrote=500 flushed=yes verified=500 mismatches=0"), "\(r.stdout)")
        #expect(r.stdout.contains("after-reset verified=500 mismatches=0"))
        #expect(r.stdout.contains("outofrange status=1"))
        #expect(r.stderr.components(separatedBy: "spawned volt-blk-worker").count == 3, "one worker per disk: \(r.stderr)")
        #expect(try BlockPattern.mismatches(image: disk, seed: 21, sectors: 7..<507).isEmpty, "acknowledged writes are on the host image")
        for pid in TestEnvironment.spawnedWorkerPIDs(r.stderr) {
            #expect(kill(pid, 0) != 0, "worker \(pid) is stopped and reaped with the VM")
        }
    }

    @Test func readOnlyDiskServesDataAndRefusesWrites() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("disk-ro")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = image(dir, size: 1 << 20)
        try BlockPattern.write(image: disk, seed: 4, sectors: 0..<16)
        let before = try Data(contentsOf: URL(fileURLWithPath: disk))
        var r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", "path=\(disk),ro=on",
                                            "--cmdline", "blk.readonly blk.seed=4 blk.sectors=16"])
        #expect(r.status == 0 && r.stdout.contains("readonly verified=16 mismatches=0"), "\(r.stdout) \(r.stderr)")
        r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", "path=\(disk),ro=on",
                                        "--cmdline", "blk.seed=5 blk.sectors=16"])
        #expect(r.stdout.contains("error status=1 type=1(write)"), "writes to a read-only disk fail with IOERR: \(r.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == before, "the image is unchanged")
    }

    @Test func workerDeathWithRestartNeverStopsTheVMAndNamesTheWorker() throws {
        guard let guest = guest() else { return }
        let dir = try makeTemporaryDirectory("disk-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = image(dir, size: 64 << 20)
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", "path=\(disk)", "--restart=never",
                                            "--cmdline", "blk.sectors=100000"],
                                           whenOutput: ("capacity=", { _ = try? TestEnvironment.run("/usr/bin/pkill", ["-KILL", "-f", "volt-blk-worker --fd 3"]) }),
                                           timeout: 60)
        #expect(!r.timedOut, "volt-vmm must not hang when its worker dies")
        #expect(r.status == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("blk worker for disk0") && r.stderr.contains("killed by signal 9"), "\(r.stderr)")
    }

    static let badDisks: [(String, String)] = [
        ("path=/nonexistent/disk.img", "create it first"),
        ("path=/dev/null", "not a regular file or block device"),
        ("path=/etc", "Is a directory"),
        ("path=/tmp/x.img,bogus=1", "unknown key 'bogus'"),
    ]

    @Test(arguments: badDisks) func badDiskIsAUsageError(_ spec: String, _ message: String) throws {
        guard let guest = guest() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", spec, "--log-level", "info"])
        #expect(r.status == 2, "stderr: \(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(TestEnvironment.spawnedWorkerPIDs(r.stderr).isEmpty, "nothing was spawned")
    }
}

/// `--metrics`: the counters match what the guest did.
@Suite struct MetricsFileTests {
    @Test func diskCountersMatchTheGuestsIO() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard let guest = TestEnvironment.guest("virtio_blk") else { Issue.record("guests did not build"); return }
        let dir = try makeTemporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: disk, contents: Data(count: 4 << 20))
        let metrics = dir.appendingPathComponent("metrics.jsonl").path
        // 100 sectors in requests of up to 8: 13 writes, 1 flush, 13 reads, 51200 bytes each way.
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", "path=\(disk)", "--metrics", metrics,
                                            "--metrics-interval", "100", "--cmdline", "blk.sectors=100"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        let last = try #require(lines.last.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? nil)
        #expect(last["final"] as? Bool == true)
        let disk0 = try #require((last["devices"] as? [String: Any])?["disk0"] as? [String: Any])
        #expect(disk0["requests_write"] as? Int == 13)
        #expect(disk0["requests_read"] as? Int == 13)
        #expect(disk0["requests_flush"] as? Int == 1)
        #expect(disk0["bytes_written"] as? Int == 51200 && disk0["bytes_read"] as? Int == 51200)
        #expect(disk0["errors_io"] as? Int == 0)
        #expect(disk0["restarts"] as? Int == 0)
        let vmm = try #require(last["vmm"] as? [String: Any])
        #expect((vmm["exits_mmio"] as? Int ?? 0) > 0, "config-space accesses are MMIO exits")
        for line in lines.dropLast() {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "every line is JSON")
        }
    }
}
