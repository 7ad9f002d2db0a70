import Foundation
import Testing
import VoltTestSupport

/// volt-blk-worker as a separate process, driven by real front-ends: QEMU (TCG) with a
/// Linux guest, and volt-vmm (KVM) with the virtio_blk.elf test guest. A missing
/// prerequisite is a loud skip, or a failure with VOLT_REQUIRE_KVM=1.
@Suite(.serialized) struct IntegrationTests {
    static var worker: String { TestEnvironment.product("volt-blk-worker") }

    /// A running worker listening on a socket in `dir`.
    final class Worker: ListeningWorker {
        init(dir: URL, arguments: [String], launcher: [String] = []) throws {
            try super.init(executable: IntegrationTests.worker, dir: dir, socketName: "blk.sock", arguments: arguments, launcher: launcher)
        }
    }

    static func tempDir() throws -> URL { try ListeningWorker.tempDir("volt-blk") }

    // MARK: - Process conventions (no prerequisites)

    @Test func printCapabilities() throws {
        let r = try TestEnvironment.run(Self.worker, ["--print-capabilities"], timeout: 10)
        #expect(r.status == 0)
        #expect(r.stdout == "{\"type\": \"block\", \"features\": [\"read-only\", \"blk-file\"]}\n")
    }

    @Test func badArgumentsExitNonZeroWithOneLine() throws {
        for args in [[String](), ["--socket-path", "/tmp/x"], ["--socket-path", "/tmp/x", "--path", "/nonexistent/img"],
                     ["--bogus"]] {
            let r = try TestEnvironment.run(Self.worker, args, timeout: 10)
            #expect(r.status != 0)
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("volt-blk-worker: error: "))
        }
    }

    @Test func sigtermExitsZero() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let w = try Worker(dir: dir, arguments: ["--path", image])
        #expect(FileManager.default.fileExists(atPath: w.socket))
        kill(w.process.processIdentifier, SIGTERM)
        #expect(w.exitStatus() == 0)
    }

    // MARK: - Linux under QEMU TCG as the vhost-user front-end

    static let linuxInit = """
        #!/bin/sh
        set -e
        mkdir -p /mnt/d
        mount -t ext4 /dev/vda /mnt/d
        echo "VOLT-BLK: mounted, hw queues: $(ls /sys/block/vda/mq | wc -l)"
        i=0
        while [ $i -lt 4 ]; do
            dd if=/dev/urandom of=/mnt/d/file$i bs=1k count=$((50 + i * 300)) 2>/dev/null
            i=$((i + 1))
        done
        echo volt-hello > /mnt/d/hello.txt
        sync
        echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        for f in hello.txt file0 file1 file2 file3; do
            echo "VOLT-SUM: $f $(md5sum < /mnt/d/$f | cut -d' ' -f1)"
        done
        rm /mnt/d/file3
        sync
        echo "VOLT-TRIM: $(fstrim -v /mnt/d 2>&1)"
        umount /mnt/d
        echo "VOLT-BLK: done"

        """

    /// Buffered, and with O_DIRECT (--direct).
    @Test(arguments: [[String](), ["--direct"]])
    func linuxGuestUnderQEMUMountsWritesAndReadsExt4(extra: [String]) throws {
        let qemu = TestEnvironment.tool("qemu-system-x86_64")
        let mkfs = TestEnvironment.tool("mkfs.ext4")
        let debugfs = TestEnvironment.tool("debugfs")
        let e2fsck = TestEnvironment.tool("e2fsck")
        let kernel = TestEnvironment.storedKernel("vmlinux")
        guard TestEnvironment.require(qemu != nil, "qemu-system-x86_64 (apt-get install qemu-system-x86)"),
              TestEnvironment.require(mkfs != nil && debugfs != nil && e2fsck != nil, "e2fsprogs (mkfs.ext4, debugfs, e2fsck)"),
              TestEnvironment.require(kernel != nil, "kernel store vmlinux (run `volt-vmm kernel build`)"),
              let qemu, let mkfs, let debugfs, let e2fsck, let kernel
        else { return }
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }

        let script = dir.appendingPathComponent("init.sh")
        try Self.linuxInit.write(to: script, atomically: true, encoding: .utf8)
        let initrd = dir.appendingPathComponent("initrd.cpio.gz").path
        let built = try TestEnvironment.run("/bin/sh", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/build-initrd.sh").path,
                                                        initrd, script.path], timeout: 120)
        guard TestEnvironment.require(built.status == 0, "busybox initramfs (scripts/build-initrd.sh: \(built.stderr))") else { return }

        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: nil)
        try FileHandle(forWritingAtPath: image)!.truncate(atOffset: 64 << 20)
        #expect(try TestEnvironment.run(mkfs, ["-q", "-F", image]).status == 0)

        let worker = try Worker(dir: dir, arguments: ["--path", image, "--num-queues", "2", "--serial", "volt-qemu-test"] + extra)
        let r = try TestEnvironment.run(qemu, [
            "-accel", "tcg", "-cpu", "max", "-smp", "2", "-M", "microvm,acpi=off", "-m", "256M",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio", "-display", "none",
            "-global", "virtio-mmio.force-legacy=false",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
            "-chardev", "socket,id=c0,path=\(worker.socket)", "-device", "vhost-user-blk,chardev=c0,num-queues=2",
            "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 reboot=t panic=-1",
        ], timeout: 180)
        #expect(!r.timedOut)
        #expect(r.stdout.contains("VOLT-BLK: done"), "guest output:\n\(r.stdout)")
        #expect(r.stdout.contains("VOLT-INIT: ok"))
        #expect(r.stdout.contains("hw queues: 2"))
        #expect(r.stdout.contains("bytes trimmed"), "fstrim (DISCARD) failed:\n\(r.stdout)")
        // Front-end gone: the worker exits 0 by itself.
        #expect(worker.exitStatus() == 0, "worker stderr: \(worker.errorOutput)")

        // Host side: every file the guest wrote, read back from the image without mounting.
        let sums = r.stdout.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("VOLT-SUM: ") }
        #expect(sums.count == 5)
        for line in sums {
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { continue }
            let name = String(parts[1])
            if name == "file3" { continue }   // deleted before fstrim
            let host = try TestEnvironment.run("/bin/sh", ["-c", "'\(debugfs)' -R 'cat /\(name)' '\(image)' 2>/dev/null | md5sum"])
            #expect(host.stdout.hasPrefix(String(parts[2])), "\(name): guest \(parts[2]), host \(host.stdout)")
        }
        let fsck = try TestEnvironment.run(e2fsck, ["-fn", image], timeout: 60)
        #expect(fsck.status == 0, "e2fsck: \(fsck.stdout)\(fsck.stderr)")
    }

    // MARK: - volt-vmm on KVM with the virtio_blk.elf test guest

    @Test func voltVMMTestGuestWritesFlushesAndReadsBack() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_blk"),
              TestEnvironment.require(TestEnvironment.tool("python3") != nil, "python3 (guests/tools/blk_pattern.py)")
        else {
            _ = TestEnvironment.require(TestEnvironment.guest("virtio_blk") != nil, "guests/out/virtio_blk.elf (make -C guests)")
            return
        }
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))

        let worker = try Worker(dir: dir, arguments: ["--path", image])
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", worker.socket,
                                            "--cmdline", "blk.seed=3 blk.sectors=200 blk.outofrange"], timeout: 120)
        #expect(r.status == 0, "volt-vmm: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST blk: capacity=2048"))
        #expect(r.stdout.contains("VOLT-GUEST blk: wrote=200 flushed=yes verified=200 mismatches=0"), "\(r.stdout)")
        #expect(r.stdout.contains("VOLT-GUEST blk: outofrange status=1"))
        #expect(!r.stdout.contains("blk: error"))
        #expect(worker.exitStatus() == 0, "worker stderr: \(worker.errorOutput)")

        let check = try TestEnvironment.run(TestEnvironment.tool("python3")!, [
            TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools/blk_pattern.py").path,
            "check", image, "--seed", "3", "--start", "0", "--sectors", "200"])
        #expect(check.status == 0, "\(check.stdout)")
    }

    /// A read-only image: the guest reads a pre-written pattern; the image is unchanged.
    @Test func voltVMMReadOnlyImage() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_blk"),
              let python = TestEnvironment.tool("python3")
        else { return }
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let tool = TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools/blk_pattern.py").path
        #expect(try TestEnvironment.run(python, [tool, "write", image, "--seed", "9", "--start", "10", "--sectors", "64"]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: image))

        let worker = try Worker(dir: dir, arguments: ["--path", image, "--readonly"])
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--vhost-user-blk", worker.socket,
                                            "--cmdline", "blk.seed=9 blk.start=10 blk.sectors=64 blk.readonly"], timeout: 120)
        #expect(r.status == 0, "volt-vmm: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST blk: readonly verified=64 mismatches=0"), "\(r.stdout)")
        #expect(worker.exitStatus() == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == before)
    }
}
