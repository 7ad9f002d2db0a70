import Foundation
import Testing
import VoltTestSupport

/// A real Linux virtio-rng driver as the front-end: QEMU (TCG, virtio-mmio, modern) with
/// `-device vhost-user-rng` on the standalone worker, the project's kernel and a busybox
/// initramfs that reads /dev/hwrng.
@Suite(.serialized) struct QEMUTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    static let guestScript = """
        #!/bin/sh
        set -u
        echo "RNGTEST current $(cat /sys/class/misc/hw_random/rng_current 2>&1)"
        dd if=/dev/hwrng of=/tmp/r bs=1024 count=64 2>/dev/null || { echo "RNGTEST read failed"; exit 1; }
        echo "RNGTEST bytes $(wc -c < /tmp/r)"
        echo "RNGTEST distinct $(od -An -v -tx1 /tmp/r | tr -s ' ' '\\n' | grep -v '^$' | sort -u | wc -l)"
        echo "RNGTEST zeros $(od -An -v -tx1 /tmp/r | tr -s ' ' '\\n' | grep -c '^00$')"
        """

    @Test func linuxReadsHwrngThroughTheWorker() throws {
        guard TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.qemu), "qemu-system-x86_64 (apt-get install qemu-system-x86)"),
              let kernel = TestEnvironment.require(TestEnvironment.storedKernel("vmlinux") != nil,
                                                   "the project kernel (volt-vmm kernel build)") ? TestEnvironment.storedKernel("vmlinux") : nil
        else { return }
        let dir = try ListeningWorker.tempDir("volt-rng-qemu")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("rng.sh"), initrd = dir.appendingPathComponent("initrd.cpio.gz")
        try Self.guestScript.write(to: script, atomically: true, encoding: .utf8)
        let built = try TestEnvironment.run("/bin/sh", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/build-initrd.sh").path,
                                                        initrd.path, script.path], timeout: 60)
        guard TestEnvironment.require(built.status == 0, "an initramfs (scripts/build-initrd.sh: \(built.stderr))") else { return }
        let worker = try ProcessTests.Worker(dir: dir)
        let r = try TestEnvironment.run(Self.qemu, [
            "-accel", "tcg", "-cpu", "max", "-M", "microvm,acpi=off", "-m", "256M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio", "-display", "none",
            "-global", "virtio-mmio.force-legacy=false",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
            "-chardev", "socket,id=c0,path=\(worker.socket)", "-device", "vhost-user-rng,chardev=c0",
            "-kernel", kernel, "-initrd", initrd.path, "-append", "console=ttyS0 reboot=t panic=-1",
        ], timeout: 180)
        let out = r.stdout
        #expect(!r.timedOut, "QEMU timed out; console:\n\(out)\nworker: \(worker.errorOutput)")
        #expect(out.contains("RNGTEST current virtio_rng"), "console:\n\(out)")
        #expect(out.contains("RNGTEST bytes 65536"), "console:\n\(out)\nworker: \(worker.errorOutput)")
        #expect(out.contains("RNGTEST distinct 256"), "console:\n\(out)")
        let zeros = out.split(whereSeparator: \.isNewline).first { $0.hasPrefix("RNGTEST zeros ") }
            .flatMap { Int(($0.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(zeros.map { $0 < 1000 } == true, "64 KiB of random bytes hold about 256 zeros: \(zeros ?? -1)")
        #expect(out.contains("VOLT-INIT: ok"), "console:\n\(out)")
        #expect(worker.exitStatus() == 0, "the worker exits 0 when QEMU hangs up: \(worker.errorOutput)")
    }
}
