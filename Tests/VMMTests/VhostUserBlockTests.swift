import Foundation
import Testing
import TestFrontend
import VoltTestSupport

/// volt-vmm's virtio-mmio transport and vhost-user frontend against qemu-storage-daemon,
/// driven by the virtio_blk test guest on KVM: interrupts via irqfd, kicks via ioeventfd.
@Suite(.serialized) struct VhostUserBlockTests {
    func prerequisites() -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard TestEnvironment.require(QemuStorageDaemon.executable != nil, "qemu-storage-daemon (apt-get install qemu-system-common)") else { return nil }
        guard let guest = TestEnvironment.guest("virtio_blk") else {
            Issue.record("test guest virtio_blk did not build (make -C guests)")
            return nil
        }
        return guest
    }

    @Test func guestWritesAndReadsThroughStorageDaemon() throws {
        guard let guest = prerequisites() else { return }
        let dir = try makeTemporaryDirectory("vublk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 4 << 20))
        let daemon = try QemuStorageDaemon(image: image, socketPath: dir.appendingPathComponent("blk.sock").path, logPath: dir.appendingPathComponent("qsd.log").path)

        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", daemon.socketPath,
                                            "--cmdline", "blk.seed=11 blk.start=100 blk.sectors=300 blk.reset blk.outofrange"])
        daemon.stop()
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST blk: capacity=8192"), "config space forwarded via GET_CONFIG")
        #expect(r.stdout.contains("wrote=300 flushed=yes verified=300 mismatches=0"), "\(r.stdout)")
        #expect(r.stdout.contains("after-reset verified=300 mismatches=0"), "device reset stops the rings; re-init works")
        #expect(r.stdout.contains("outofrange status=1"))
        #expect(r.stdout.contains("VOLT-GUEST blk: done"))
        #expect(try BlockPattern.mismatches(image: image, seed: 11, sectors: 100..<400).isEmpty, "the data is on the host image")
        #expect(try BlockPattern.mismatches(image: image, seed: 11, sectors: 0..<100).count == 100, "nothing written before the range")
    }

    @Test func guestReadsWhatTheHostWrote() throws {
        guard let guest = prerequisites() else { return }
        let dir = try makeTemporaryDirectory("vublk-ro")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        try BlockPattern.write(image: image, seed: 5, sectors: 10..<42)
        let daemon = try QemuStorageDaemon(image: image, socketPath: dir.appendingPathComponent("blk.sock").path, logPath: dir.appendingPathComponent("qsd.log").path, writable: false)
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", daemon.socketPath,
                                            "--cmdline", "blk.readonly blk.seed=5 blk.start=10 blk.sectors=32"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("readonly verified=32 mismatches=0"), "\(r.stdout)")
    }

    @Test func backendDeathStopsTheVMWithAFailure() throws {
        guard let guest = prerequisites() else { return }
        let dir = try makeTemporaryDirectory("vublk-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 64 << 20))
        let daemon = try QemuStorageDaemon(image: image, socketPath: dir.appendingPathComponent("blk.sock").path, logPath: dir.appendingPathComponent("qsd.log").path)
        let started = Date()
        // Kill the backend as soon as the guest starts its I/O.
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", daemon.socketPath,
                                            "--cmdline", "blk.sectors=100000"],
                                           whenOutput: ("capacity=", { daemon.stop() }), timeout: 60)
        #expect(!r.timedOut, "volt-vmm must not hang when a backend dies")
        #expect(r.status == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("vhost-user-blk0") && r.stderr.contains("disconnected"), "names the device: \(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test func missingSocketIsAUsageError() throws {
        guard let guest = prerequisites() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", "/nonexistent/blk.sock"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/blk.sock") && r.stderr.contains("start the backend"), "\(r.stderr)")
    }
}
