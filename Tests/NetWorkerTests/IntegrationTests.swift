import Foundation
import Testing
import VoltTestSupport

/// volt-net-worker as a standalone process, with real front-ends: volt-vmm running
/// guests/out/virtio_net.elf on KVM, and QEMU (TCG) running a Linux guest.
@Suite(.serialized) struct IntegrationTests {
    static var worker: String { TestEnvironment.productsDirectory.appendingPathComponent("volt-net-worker").path }

    static func socketPath(_ tag: String) -> String { "/tmp/volt-nwt-\(getpid())-\(tag).sock" }

    @Test func printCapabilities() throws {
        let r = try TestEnvironment.run(Self.worker, ["--print-capabilities"], timeout: 10)
        #expect(r.status == 0)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "{\"type\": \"net\"}")
    }

    @Test func badArgumentsExitNonZeroWithOneLine() throws {
        let r = try TestEnvironment.run(Self.worker, ["--socket-path", "/tmp/x", "--tap", "vt0", "--queue-size", "3"], timeout: 10)
        #expect(r.status == 2)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("fix:"), "stderr: \(r.stderr)")
    }

    @Test func voltVMMGuestExchangesFramesThroughTheWorker() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let socket = Self.socketPath("vmm")
        defer { unlink(socket) }
        let worker = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, Self.worker, "--socket-path", socket,
                                                     "--tap", ns.tap, "--mac", "52:54:00:aa:bb:01"])
        defer { worker.stop() }
        let peer = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, "python3",
                                                   TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools/net_peer.py").path,
                                                   ns.tap, "--expect-tx", "4", "--send", "3", "--timeout", "30"])
        defer { peer.stop() }
        #expect(peer.waitFor("ready", timeout: 10))
        // The worker listens once its socket exists.
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--cmdline", "net.count=4 net.expect=3",
                                            "--vhost-user-net", socket], timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST net: sent=4"), "stdout: \(r.stdout)")
        #expect(r.stdout.contains("VOLT-GUEST net: received=3 other=0"), "stdout: \(r.stdout)")
        #expect(r.stdout.contains("VOLT-GUEST net: mac=52:54:00:aa:bb:01"))
        #expect(peer.wait(timeout: 10))
        #expect(peer.process.terminationStatus == 0, "peer: \(peer.stdout)")
        for i in 0..<4 { #expect(peer.stdout.contains("VOLT-NET-TX \(i)"), "peer: \(peer.stdout)") }
        // The front-end went away: the worker exits 0 by itself.
        #expect(worker.wait(timeout: 10), "worker still running after volt-vmm exited")
        #expect(worker.process.terminationStatus == 0, "worker: \(worker.stderr)")
        #expect(worker.stderr.contains("tx_frames=4"), "worker: \(worker.stderr)")
    }

    /// The production shape: volt-vmm opens the TAP and spawns volt-net-worker itself.
    /// The net worker is killed once the guest has sent its frames and waits for
    /// replies; only then are replies written into the TAP (which volt-vmm keeps open).
    /// The restarted worker (same TAP fds, rings replayed from the used index) delivers them.
    @Test func netWorkerKilledMidRunIsRestartedAndTrafficResumes() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let mac = "52:54:00:aa:bb:07"
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--cmdline", "net.count=5 net.expect=2",
                                                         "--net", "tap=\(ns.tap),mac=\(mac)", "--log-level", "info"],
                                        whenOutput: ("VOLT-GUEST net: sent=5", {
            _ = try? TestEnvironment.run("/usr/bin/pkill", ["-KILL", "-f", "volt-net-worker --fd 3 .*--mac \(mac)"])
            // Two VOLT-NET-RX frames straight into the TAP (net_peer.py's format; it only
            // answers frames it sees, and the guest has sent its frames already).
            let tools = TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools").path
            let script = """
            import sys, socket; sys.path.insert(0, "\(tools)"); import net_peer as p
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("\(ns.tap)", 0))
            for i in range(2): s.send((b"\\xff" * 6 + bytes.fromhex("020000aa0001") + p.ETH_P_VOLT.to_bytes(2, "big") + f"VOLT-NET-RX hello {i}".encode()).ljust(60, b"\\0"))
            """
            _ = try? TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, "python3", "-c", script])
        }), timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("net worker for net0") && r.stderr.contains("device state replayed"), "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST net: received=2 other=0"), "stdout: \(r.stdout)")
    }

    @Test func voltVMMSpawnsTheNetWorkerForATap() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let peer = try ns.peer(["--expect-tx", "5", "--send", "2", "--timeout", "30"])
        defer { peer.stop() }
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--cmdline", "net.count=5 net.expect=2",
                                                         "--net", "tap=\(ns.tap),mac=52:54:00:aa:bb:02", "--log-level", "info"],
                                        timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("spawned volt-net-worker pid"), "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST net: mac=52:54:00:aa:bb:02"))
        #expect(r.stdout.contains("VOLT-GUEST net: sent=5"), "stdout: \(r.stdout)")
        #expect(r.stdout.contains("VOLT-GUEST net: received=2 other=0"), "stdout: \(r.stdout)")
        #expect(peer.wait(timeout: 10))
        for i in 0..<5 { #expect(peer.stdout.contains("VOLT-NET-TX \(i)"), "peer: \(peer.stdout)") }
        #expect(TestEnvironment.spawnedWorkerPIDs(r.stderr).count == 1)
        for pid in TestEnvironment.spawnedWorkerPIDs(r.stderr) {
            #expect(kill(pid, 0) != 0, "worker \(pid) is stopped and reaped with the VM")
        }
    }

    /// `--fault net0:drop,percent=100` seen from both sides: the guest sends, nothing
    /// reaches the wire, and the worker's faults_injected counts every frame.
    @Test func droppedFramesNeverReachTheWire() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let peer = try ns.peer(["--expect-tx", "5", "--timeout", "8"])
        defer { peer.stop() }
        let metrics = "/tmp/volt-nwt-fault-\(getpid()).jsonl"
        defer { unlink(metrics) }
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--cmdline", "net.count=5",
                                                         "--net", "tap=\(ns.tap)", "--fault", "net0:drop,percent=100",
                                                         "--metrics", metrics], timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST net: sent=5"), "the guest's driver saw every frame completed: \(r.stdout)")
        _ = peer.wait(timeout: 15)
        #expect(!peer.stdout.contains("VOLT-NET-TX"), "no dropped frame reached the TAP: \(peer.stdout)")
        let last = (try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("\"faults_injected\":5"), "every frame counted as a fault: \(last)")
    }

    @Test func voltVMMReportsAMissingTap() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm"),
              let guest = TestEnvironment.guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        // tap= names an existing TAP: a missing one is not silently created.
        var r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--net", "tap=nosuch0"], timeout: 30)
        #expect(r.status == 2, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("tap=nosuch0: no such interface") && r.stderr.contains("ip tuntap add"), "stderr: \(r.stderr)")
        #expect(try ns.exec(["ip", "-o", "link"]).stdout.contains("nosuch0") == false)
        // An interface that is not a TAP is refused.
        try ns.exec(["ip", "link", "add", "br9", "type", "bridge"])
        r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                     "--kernel", guest, "--net", "tap=br9"], timeout: 30)
        #expect(r.status == 2 && r.stderr.contains("not a TAP"), "stderr: \(r.stderr)")
    }

    @Test func workerExitsZeroOnSIGTERM() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let socket = Self.socketPath("term")
        defer { unlink(socket) }
        let worker = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, Self.worker, "--socket-path", socket, "--tap", ns.tap])
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }
        usleep(100_000)
        // `ip netns exec` execs the worker, so the signal reaches it directly.
        #expect(worker.stop() == 0, "stderr: \(worker.stderr)")
    }
}
