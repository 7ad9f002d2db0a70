import CShim
import Foundation
import Testing
import VoltTestSupport

/// Firecracker's API over a real Unix socket with test guests under KVM: configured by
/// API only, started, paused and resumed, ended by Ctrl+Alt+Del; the state rules after
/// start; the socket file's life.
@Suite(.serialized) struct FirecrackerAPITests {
    func guest(_ name: String) -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let path = TestEnvironment.guest(name) else {
            Issue.record("test guest \(name) did not build (make -C guests)")
            return nil
        }
        return path
    }

    @Test func configuredByAPIOnlyTheGuestSeesThatMachine() throws {
        guard let facts = guest("facts") else { return }
        let socket = apiSocketPath("facts")
        let vm = try APIVM(socket: socket)
        defer { vm.process.stop() }
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        var st = stat()
        #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == 0o600 && (st.st_mode & S_IFMT) == S_IFSOCK, "a socket, mode 0600")

        let info = vm.call("GET", "/")
        #expect(info.status == 200 && info.json["state"] as? String == "Not started", "\(info)")
        #expect(vm.call("GET", "/version").json["firecracker_version"] as? String != nil)
        #expect(vm.call("PUT", "/boot-source", #"{"kernel_image_path": "\#(facts)", "boot_args": "console=ttyS0 api.only=1"}"#).status == 204)
        #expect(vm.call("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64}"#).status == 204)
        #expect(vm.call("PATCH", "/machine-config", #"{"vcpu_count": 2}"#).status == 204, "PATCH changes only what it names")
        let machine = vm.call("GET", "/machine-config").json
        #expect(machine["vcpu_count"] as? Int == 2 && machine["mem_size_mib"] as? Int == 64, "\(machine)")

        let config = vm.call("GET", "/vm/config").json
        let boot = config["boot-source"] as? [String: Any] ?? [:]
        #expect(boot["kernel_image_path"] as? String == facts && boot["boot_args"] as? String == "console=ttyS0 api.only=1", "\(config)")
        #expect((config["machine-config"] as? [String: Any])?["vcpu_count"] as? Int == 2, "\(config)")
        #expect((config["drives"] as? [Any])?.isEmpty == true, "\(config)")

        let start = vm.call("PUT", "/actions", #"{"action_type": "InstanceStart"}"#)
        #expect(start.status == 204, "\(start) stderr: \(vm.stderr)")
        #expect(vm.exitStatus() == 0, "stderr: \(vm.stderr)")
        #expect(vm.stdout.contains("FACT cmdline=console=ttyS0 api.only=1\n"), "\(vm.stdout)")
        #expect(vm.stdout.contains("FACT mp_cpus=2\n"), "\(vm.stdout)")
        let ram = vm.stdout.split(separator: "\n").first { $0.hasPrefix("FACT ram_bytes=") }.flatMap { Int($0.dropFirst("FACT ram_bytes=".count)) } ?? 0
        #expect(ram > 63 << 20 && ram <= 64 << 20, "64 MiB less the legacy holes: \(ram)")
        #expect(access(socket, F_OK) != 0, "the socket is removed when volt-vmm ends")
    }

    /// A flag-started ticker: pause stops its clock lines, resume goes on without a jump
    /// in kvmclock; what is refused after start; Ctrl+Alt+Del ends it cleanly.
    @Test func pauseResumeAndCtrlAltDel() throws {
        guard let ticker = guest("ticker") else { return }
        let socket = apiSocketPath("ticker")
        let vm = try APIVM(socket: socket, arguments: ["--kernel", ticker, "--cmdline", "ticker.ms=100", "--log-level", "info"])
        defer { vm.process.stop() }
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        #expect(vm.waitForTick(3), "stdout: \(vm.stdout) stderr: \(vm.stderr)")
        #expect(vm.state() == "Running")
        let config = vm.call("GET", "/vm/config").json
        #expect((config["boot-source"] as? [String: Any])?["kernel_image_path"] as? String == ticker, "the flags are the configuration: \(config)")

        // After start, as in Firecracker: no new boot source, machine, devices, or start.
        for (method, path, body, words) in [
            ("PUT", "/boot-source", #"{"kernel_image_path": "/x"}"#, "after the microVM started"),
            ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64}"#, "after the microVM started"),
            ("PATCH", "/machine-config", #"{"vcpu_count": 1}"#, "after the microVM started"),
            ("PUT", "/drives/d", #"{"drive_id": "d", "path_on_host": "/x", "is_root_device": false}"#, "after the microVM started"),
            ("PUT", "/network-interfaces/n", #"{"iface_id": "n", "host_dev_name": "t"}"#, "after the microVM started"),
            ("PUT", "/actions", #"{"action_type": "InstanceStart"}"#, "already"),
            ("PUT", "/logger", #"{"log_path": "/tmp/x"}"#, "after the microVM started"),
            ("PATCH", "/vm", #"{"state": "Sleeping"}"#, "not Paused or Resumed"),
        ] {
            let r = vm.call(method, path, body)
            #expect(r.status == 400 && r.fault.contains(words), "\(method) \(path): \(r)")
        }
        #expect(vm.call("GET", "/machine-config").status == 200)

        let pause = vm.call("PATCH", "/vm", #"{"state": "Paused"}"#)
        #expect(pause.status == 204, "\(pause)")
        #expect(vm.state() == "Paused")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204, "pausing a paused VM is a no-op")
        usleep(300_000)   // lines already written reach the pipe
        let atPause = vm.ticks.count
        usleep(1_200_000)
        #expect(vm.ticks.count == atPause, "no tick while paused: \(vm.ticks.suffix(3))")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        #expect(vm.state() == "Running")
        #expect(vm.waitForTick(atPause + 3), "ticks go on after resume")

        let t = vm.ticks
        if t.count > atPause, atPause > 0 {
            let before = t[atPause - 1], after = t[atPause]
            #expect(after.kvm - before.kvm < 700, "kvmclock held across a 1.5 s pause: \(before) -> \(after)")
            if vm.stderr.contains("a paused guest's TSC runs on") {
                // This host's KVM ignores TSC offsets (nested PVM): the warning is true.
                #expect(after.tsc - before.tsc >= 1000, "the warning says the TSC ran on: \(before) -> \(after)")
            } else {
                #expect(after.tsc - before.tsc < 700, "the TSC held across the pause: \(before) -> \(after)")
            }
        }

        let cad = vm.call("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#)
        #expect(cad.status == 204, "\(cad)")
        #expect(vm.exitStatus(timeout: 30) == 0, "the guest resets on Ctrl+Alt+Del: \(vm.stderr)")
        #expect(vm.stdout.contains("VOLT-GUEST ticker: ctrl-alt-del"), "\(vm.stdout.suffix(300))")
        #expect(access(socket, F_OK) != 0, "the socket is removed after the lock-down too (by the launcher)")
        #expect(vm.call("GET", "/").status == -1, "nobody answers any more")
    }

    /// `volt-vmm ctl`: one request, the JSON printed; exit 0, 1 for a fault, 2 unreachable.
    @Test func ctlDrivesAVMFromTheShell() throws {
        guard let ticker = guest("ticker") else { return }
        let socket = apiSocketPath("ctl")
        let vm = try APIVM(socket: socket, arguments: ["--kernel", ticker, "--cmdline", "ticker.ms=100"])
        defer { vm.process.stop() }
        #expect(vm.ready() && vm.waitForTick(1), "stderr: \(vm.stderr)")
        func ctl(_ verb: String, _ path: String = socket) throws -> TestEnvironment.Result {
            try TestEnvironment.runVMM(["ctl", "--api-sock", path, verb], timeout: 20)
        }
        let info = try ctl("info")
        #expect(info.status == 0 && info.stdout.contains(#""state":"Running""#), "\(info.stdout) \(info.stderr)")
        #expect(try ctl("pause").status == 0)
        #expect(try ctl("info").stdout.contains(#""state":"Paused""#))
        #expect(try ctl("resume").status == 0)
        let config = try ctl("config")
        #expect(config.status == 0 && config.stdout.contains(ticker), "\(config.stdout)")
        let refused = try ctl("start")
        #expect(refused.status == 1 && refused.stderr.contains("already"), "a fault: \(refused.stderr)")
        let nobody = try ctl("info", apiSocketPath("nobody"))
        #expect(nobody.status == 2 && nobody.stderr.contains("nobody"), "\(nobody.stderr)")
        #expect(try ctl("stop").status == 0)
        #expect(vm.exitStatus(timeout: 30) == 0, "stderr: \(vm.stderr)")
    }

    @Test func aRunningVMStoppedBySIGTERMLeavesNoSocket() throws {
        guard let ticker = guest("ticker") else { return }
        let socket = apiSocketPath("sigterm")
        let vm = try APIVM(socket: socket, arguments: ["--kernel", ticker, "--cmdline", "ticker.ms=100"])
        defer { vm.process.stop() }
        #expect(vm.ready() && vm.waitForTick(1), "stderr: \(vm.stderr)")
        #expect(vm.process.stop() == 128 + SIGTERM, "stopped by signal 15: \(vm.stderr)")
        #expect(access(socket, F_OK) != 0, "the launcher removed the socket after the lock-down")
    }

    @Test func aLiveSocketIsRefusedAStaleOneReplaced() throws {
        let socket = apiSocketPath("live")
        // A stale socket file: bound, then its listener gone.
        let stale = volt_unix_listen(socket, 1)
        #expect(stale >= 0)
        close(stale)
        #expect(access(socket, F_OK) == 0)
        let first = try APIVM(socket: socket)
        defer { first.process.stop() }
        #expect(first.ready(), "a stale socket is replaced: \(first.stderr)")
        let second = try APIVM(socket: socket)
        defer { second.process.stop() }
        #expect(second.exitStatus(timeout: 30) != 0)
        #expect(second.stderr.contains(socket) && second.stderr.contains("in use"), "\(second.stderr)")
        #expect(first.state() == "Not started", "the first VMM still answers")
        first.process.stop()
        #expect(access(socket, F_OK) != 0, "removed when volt-vmm is stopped by SIGTERM")
    }

    @Test func firecrackerConfigFileWithoutAPI() throws {
        guard let facts = guest("facts") else { return }
        let dir = try makeTemporaryDirectory("fc-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("vm.json").path
        try #"""
        {"boot-source": {"kernel_image_path": "\#(facts)", "boot_args": "console=ttyS0 from.file=1"},
         "drives": [], "network-interfaces": [],
         "machine-config": {"vcpu_count": 2, "mem_size_mib": 64, "smt": false, "track_dirty_pages": false}}
        """#.write(toFile: good, atomically: true, encoding: .utf8)
        let r = try TestEnvironment.runVMM(["firecracker", "--config-file", good, "--no-api"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("FACT cmdline=console=ttyS0 from.file=1\n") && r.stdout.contains("FACT mp_cpus=2\n"), "\(r.stdout)")

        // The same through a link named firecracker, as tools exec it.
        let link = dir.appendingPathComponent("firecracker").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: TestEnvironment.voltVMM)
        let viaLink = try TestEnvironment.run(link, ["--config-file", good, "--no-api"], timeout: 60)
        #expect(viaLink.status == 0 && viaLink.stdout.contains("FACT cmdline=console=ttyS0 from.file=1\n"), "stderr: \(viaLink.stderr)")
        let version = try TestEnvironment.run(link, ["--version"], timeout: 10)
        #expect(version.status == 0 && version.stdout.hasPrefix("Firecracker v"), "\(version.stdout)")

        let bad = dir.appendingPathComponent("bad.json").path
        try #"{"boot-source": {"kernel_image_path": "\#(facts)"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "vcpus": 2}}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try TestEnvironment.runVMM(["firecracker", "--config-file", bad, "--no-api"])
        #expect(refused.status != 0 && refused.stderr.contains("machine-config.vcpus") && refused.stderr.contains(bad), "\(refused.stderr)")
        #expect(!refused.stdout.contains("FACT"), "nothing boots from a bad config")
    }

    /// A drive and a NIC added by API are spawned, jailed workers, as with --disk/--net;
    /// the VM is paused while the workers are inspected (and keep their state).
    @Test func devicesAddedByAPIAreJailedWorkers() throws {
        guard let blk = guest("virtio_blk") else { return }
        let dir = try makeTemporaryDirectory("api-disk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 4 << 20))
        let socket = apiSocketPath("disk")
        // Each request of the disk takes 20 ms: the guest is still at it when looked at.
        let vm = try APIVM(socket: socket, arguments: ["--log-level", "info", "--fault", "disk0:delay,ms=20"])
        defer { vm.process.stop() }
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        #expect(vm.call("PUT", "/boot-source", #"{"kernel_image_path": "\#(blk)", "boot_args": "blk.seed=5 blk.start=3 blk.sectors=96"}"#).status == 204)
        let drive = vm.call("PUT", "/drives/data", #"{"drive_id": "data", "path_on_host": "\#(image)", "is_root_device": false, "is_read_only": false}"#)
        #expect(drive.status == 204, "\(drive)")
        #expect(vm.call("PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status == 204, "stderr: \(vm.stderr)")
        #expect(vm.process.waitFor("capacity=", timeout: 30), "\(vm.stdout)")
        #expect(vm.process.waitFor("spawned volt-blk-worker pid", timeout: 10), "stderr is read apart from stdout")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        let pids = TestEnvironment.spawnedWorkerPIDs(vm.stderr)
        #expect(pids.count == 1, "one worker for the drive: \(vm.stderr)")
        for pid in pids {
            let jail = SandboxInspection.status(pid)
            #expect(jail["Seccomp"] == "2" && jail["NoNewPrivs"] == "1" && jail["CapEff"] == "0000000000000000", "jailed: \(jail)")
        }
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        #expect(vm.exitStatus() == 0, "stderr: \(vm.stderr)")
        #expect(vm.stdout.contains("wrote=96 flushed=yes verified=96 mismatches=0"), "\(vm.stdout)")
        #expect(try BlockPattern.mismatches(image: image, seed: 5, sectors: 3..<99).isEmpty, "the writes are on the image")
        for pid in pids { #expect(kill(pid, 0) != 0, "worker \(pid) reaped") }
    }

    @Test func aNICAddedByAPIIsAJailedWorker() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              let net = guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let socket = apiSocketPath("nic")
        let vm = try APIVM(socket: socket, command: ["/usr/sbin/ip", "netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                     "--api-sock", socket, "--log-level", "info"])
        defer { vm.process.stop() }
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        #expect(vm.call("PUT", "/boot-source", #"{"kernel_image_path": "\#(net)", "boot_args": "net.count=3 net.expect=1"}"#).status == 204)
        let nic = vm.call("PUT", "/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "\#(ns.tap)", "guest_mac": "52:54:00:ab:cd:01"}"#)
        #expect(nic.status == 204, "\(nic)")
        let nics = vm.call("GET", "/vm/config").json["network-interfaces"] as? [[String: Any]] ?? []
        #expect(nics.first?["host_dev_name"] as? String == ns.tap && nics.first?["guest_mac"] as? String == "52:54:00:ab:cd:01", "\(nics)")
        #expect(vm.call("PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status == 204, "stderr: \(vm.stderr)")
        // No peer yet: the guest sends its frames, then waits (5 s) for one.
        #expect(vm.process.waitFor("VOLT-GUEST net: sent=3", timeout: 30), "\(vm.stdout)")
        #expect(vm.process.waitFor("spawned volt-net-worker pid", timeout: 10))
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        let pids = TestEnvironment.spawnedWorkerPIDs(vm.stderr)
        #expect(pids.count == 1)
        for pid in pids {
            let jail = SandboxInspection.status(pid)
            #expect(jail["Seccomp"] == "2" && jail["NoNewPrivs"] == "1" && jail["CapEff"] == "0000000000000000", "jailed: \(jail)")
        }
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        let peer = try ns.peer(["--expect-tx", "0", "--send", "1", "--send-first", "--timeout", "30"])
        defer { peer.stop() }
        #expect(vm.exitStatus() == 0, "stderr: \(vm.stderr)")
        #expect(vm.stdout.contains("VOLT-GUEST net: mac=52:54:00:ab:cd:01"), "\(vm.stdout)")
        #expect(vm.stdout.contains("VOLT-GUEST net: received=1 other=0"), "\(vm.stdout)")
    }
}
