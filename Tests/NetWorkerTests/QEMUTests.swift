import Foundation
import Testing
import VoltTestSupport

/// A real Linux virtio-net driver as the front-end: QEMU (TCG, virtio-mmio, modern) with
/// `-netdev vhost-user` on the standalone worker, the project's kernel and a busybox
/// initramfs that configures eth0, pings the TAP side and moves a file both ways.
@Suite(.serialized) struct QEMUTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    static let guestScript = """
        #!/bin/sh
        set -u
        ipcfg=$(sed -n 's/.*ip=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
        addr=${ipcfg%%:*}
        ip link set eth0 up
        ip addr add "$addr/24" dev eth0 2>/dev/null || true
        echo "NETTEST eth0 $(cat /sys/class/net/eth0/address) $addr"
        ping -c 3 -W 5 10.77.0.1 || { echo "NETTEST ping failed"; exit 1; }
        echo "NETTEST ping ok"
        nc 10.77.0.1 7001 > /tmp/blob || { echo "NETTEST fetch failed"; exit 1; }
        echo "NETTEST fetched $(sha256sum /tmp/blob | cut -d' ' -f1) $(wc -c < /tmp/blob)"
        nc 10.77.0.1 7002 < /tmp/blob || true
        echo "NETTEST sent"
        """

    /// Host side, inside the namespace: serves BLOB once on 7001, then takes exactly its
    /// size back on 7002 and prints both checksums.
    static let hostScript = """
        import hashlib, os, socket, sys
        blob = os.urandom(int(sys.argv[1]))
        print("host-sha", hashlib.sha256(blob).hexdigest(), flush=True)
        def listen(port):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("10.77.0.1", port)); s.listen(1); s.settimeout(120); return s
        a, b = listen(7001), listen(7002)
        print("ready", flush=True)
        c, _ = a.accept(); c.sendall(blob); c.close()
        c, _ = b.accept(); c.settimeout(60); got = b""
        while len(got) < len(blob):
            d = c.recv(65536)
            if not d: break
            got += d
        c.close()
        print("back-sha", hashlib.sha256(got).hexdigest(), len(got), flush=True)
        """

    @Test func linuxGuestPingsAndMovesAFileBothWays() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.qemu), "qemu-system-x86_64 (apt-get install qemu-system-x86)"),
              let kernel = TestEnvironment.require(TestEnvironment.storedKernel("vmlinux") != nil,
                                                   "the project kernel (volt-vmm kernel build)") ? TestEnvironment.storedKernel("vmlinux") : nil
        else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-nwt-qemu-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("net.sh"), host = dir.appendingPathComponent("host.py")
        let initrd = dir.appendingPathComponent("initrd.cpio.gz")
        try Self.guestScript.write(to: script, atomically: true, encoding: .utf8)
        try Self.hostScript.write(to: host, atomically: true, encoding: .utf8)
        let built = try TestEnvironment.run("/bin/sh", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/build-initrd.sh").path,
                                                        initrd.path, script.path], timeout: 60)
        guard TestEnvironment.require(built.status == 0, "an initramfs (scripts/build-initrd.sh: \(built.stderr))") else { return }

        let ns = try NetNamespace(address: "10.77.0.1/24")
        defer { ns.delete() }
        let socket = IntegrationTests.socketPath("qemu")
        defer { unlink(socket) }
        let worker = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, IntegrationTests.worker,
                                                     "--socket-path", socket, "--tap", ns.tap])
        defer { worker.stop() }
        let size = 300_000
        let peer = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, "python3", host.path, String(size)])
        defer { peer.stop() }
        #expect(peer.waitFor("ready", timeout: 10), "host: \(peer.stdout) \(peer.stderr)")
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }

        let r = try TestEnvironment.run(Self.qemu, [
            "-accel", "tcg", "-cpu", "max", "-M", "microvm,acpi=off", "-m", "256M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio", "-display", "none",
            "-global", "virtio-mmio.force-legacy=false",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
            "-chardev", "socket,id=c1,path=\(socket)",
            "-netdev", "type=vhost-user,id=n0,chardev=c1",
            "-device", "virtio-net-device,netdev=n0,mac=52:54:00:77:00:02",
            "-kernel", kernel, "-initrd", initrd.path,
            "-append", "console=ttyS0 reboot=t panic=-1 ip=10.77.0.2::10.77.0.1:255.255.255.0::eth0:off",
        ], timeout: 180)   // reboot=t + -no-reboot: QEMU exits when /init ends
        let out = r.stdout
        #expect(!r.timedOut, "QEMU timed out; console:\n\(out)\nworker: \(worker.stderr)")
        #expect(out.contains("NETTEST ping ok"), "console:\n\(out)\nworker: \(worker.stderr)")
        #expect(out.contains("VOLT-INIT: ok"), "console:\n\(out)")
        #expect(peer.wait(timeout: 30), "host: \(peer.stdout)")
        let hostSHA = peer.stdout.split(separator: "\n").first { $0.hasPrefix("host-sha ") }?.split(separator: " ").last.map(String.init)
        let sha = try #require(hostSHA, "host: \(peer.stdout)")
        #expect(out.contains("NETTEST fetched \(sha) \(size)"), "the guest got the file intact; console:\n\(out)")
        #expect(peer.stdout.contains("back-sha \(sha) \(size)"), "the file came back intact; host: \(peer.stdout)")
        print("worker: \(worker.stderr)")
    }
}
