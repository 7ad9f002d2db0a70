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

    func workersRunning() throws -> String {
        try TestEnvironment.run("/usr/bin/pgrep", ["-af", "volt-blk-worker --fd 3"]).stdout
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
        #expect(try workersRunning().isEmpty, "workers are stopped and reaped with the VM")
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
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--disk", spec])
        #expect(r.status == 2, "stderr: \(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(try workersRunning().isEmpty)
    }
}
