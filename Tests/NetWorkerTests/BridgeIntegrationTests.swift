import Foundation
import VoltTestSupport
import Testing

/// volt-vmm's host networking end to end, as root, inside a namespace each test makes
/// (bridge br0 with veth vp1 as a port; the peer listens on vp0): `--net bridge=BR` creates
/// and deletes its TAP on every way out, `mode=networkd` writes and removes its units.
@Suite(.serialized) struct BridgeIntegrationTests {
    static var peerScript: String { TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools/net_peer.py").path }

    /// A namespace with br0 (STP off, so ports forward at once) and a veth pair vp0/vp1, vp1 on br0.
    static func bridgeNamespace() throws -> NetNamespace {
        let ns = try NetNamespace()
        do {
            try ns.exec(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0"])
            try ns.exec(["ip", "link", "add", "vp0", "type", "veth", "peer", "name", "vp1"])
            try ns.exec(["ip", "link", "set", "vp1", "master", "br0"])
            for link in ["br0", "vp0", "vp1"] { try ns.exec(["ip", "link", "set", link, "up"]) }
        } catch {
            ns.delete()
            throw error
        }
        return ns
    }

    static func links(_ ns: NetNamespace) throws -> String { try ns.exec(["ip", "-o", "link"]).stdout }

    static func eventually(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    /// volt-vmm inside `ns` (through env(1), which execs: the pid is volt-vmm's) running a
    /// guest that has sent one frame and now waits ~5 s for `expect` frames no one sends.
    static func waitingVM(_ ns: NetNamespace, guest: String, id: String, nets: [String], env: [String] = [],
                          expect: Int = 100, extra: [String] = []) throws -> Background {
        let vm = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, "/usr/bin/env"] + env
            + [TestEnvironment.voltVMM, "run", "--kernel", guest, "--cmdline", "net.count=1 net.expect=\(expect)", "--id", id,
               "--log-level", "info"] + extra + nets.flatMap { ["--net", $0] })
        #expect(vm.waitFor("VOLT-GUEST net: sent=1", timeout: 30), "stderr: \(vm.stderr)")
        return vm
    }

    /// Worker pids volt-vmm logged ("spawned volt-net-worker pid N").
    static func workerPIDs(_ log: String) -> [Int32] {
        log.split(separator: "\n").compactMap { line in
            guard let r = line.range(of: "spawned volt-net-worker pid ") else { return nil }
            return Int32(line[r.upperBound...].prefix(while: \.isNumber))
        }
    }

    /// Gone, or a zombie nobody reaps (PID 1 in a container may not).
    static func processGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? true
    }

    static func prerequisites() -> String? {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm") else { return nil }
        return TestEnvironment.guest("virtio_net")
    }

    @Test func bridgeModeFramesBothWaysAndTheTapGoesWithTheVM() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        let peer = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, "python3", Self.peerScript, "vp0",
                                                   "--expect-tx", "5", "--send", "2", "--timeout", "30"])
        defer { peer.stop() }
        #expect(peer.waitFor("ready", timeout: 10))
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--cmdline", "net.count=5 net.expect=2",
                                                         "--id", "bt1", "--net", "bridge=br0,vhost=on", "--log-level", "info"],
                                        timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("net0: TAP tap-bt1 on bridge br0"), "stderr: \(r.stderr)")
        // No /dev/vhost-net on this host: the probe says why and the worker serves the NIC.
        if !FileManager.default.fileExists(atPath: "/dev/vhost-net") {
            #expect(r.stderr.contains("vhost=on: cannot open /dev/vhost-net: no such device") && r.stderr.contains("using volt-net-worker"),
                    "stderr: \(r.stderr)")
        }
        // The guest got the generated, locally administered MAC volt-vmm logged.
        let mac = try #require(r.stderr.split(separator: "\n").first { $0.contains("guest MAC ") }?.split(separator: " ").last)
        #expect(r.stdout.contains("VOLT-GUEST net: mac=\(mac)"), "stdout: \(r.stdout)")
        #expect(UInt8(mac.prefix(2), radix: 16).map { $0 & 3 == 2 } == true)
        #expect(r.stdout.contains("VOLT-GUEST net: sent=5"), "stdout: \(r.stdout)")
        #expect(r.stdout.contains("VOLT-GUEST net: received=2"), "stdout: \(r.stdout)")
        #expect(peer.wait(timeout: 10))
        for i in 0..<5 { #expect(peer.stdout.contains("VOLT-NET-TX \(i)") && peer.stdout.contains("src=\(mac)"), "peer: \(peer.stdout)") }
        #expect(try Self.eventually(timeout: 5) { try !Self.links(ns).contains("tap-bt1") }, "the TAP outlived a normal exit")
    }

    @Test func theTapsGoOnSIGTERM() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        let vm = try Self.waitingVM(ns, guest: guest, id: "term", nets: ["bridge=br0"])
        defer { vm.stop() }
        let links = try Self.links(ns)
        #expect(links.contains("tap-term") && links.contains("master br0"), "links: \(links)")
        #expect(vm.stop() == 128 + SIGTERM, "stderr: \(vm.stderr)")
        #expect(try !Self.links(ns).contains("tap-term"), "the TAP outlived SIGTERM")
        for pid in Self.workerPIDs(vm.stderr) { #expect(Self.processGone(pid)) }
    }

    @Test func theTapsGoWhenVoltVMMIsKilled() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        // Two NICs: distinct names (-0, -1) and MACs; SIGKILL leaves volt-vmm no chance to clean up.
        let vm = try Self.waitingVM(ns, guest: guest, id: "kill", nets: ["bridge=br0,queues=2", "bridge=br0"])
        defer { vm.stop() }
        let links = try Self.links(ns)
        #expect(links.contains("tap-kill-0") && links.contains("tap-kill-1"), "links: \(links)")
        let macs = vm.stderr.split(separator: "\n").filter { $0.contains("guest MAC ") }.compactMap { $0.split(separator: " ").last }
        #expect(macs.count == 2 && Set(macs).count == 2, "stderr: \(vm.stderr)")
        let workers = Self.workerPIDs(vm.stderr)
        #expect(workers.count == 2)
        kill(vm.process.processIdentifier, SIGKILL)
        _ = vm.wait(timeout: 10)
        // The workers see the vhost-user socket close and exit; their TAP fds were the last.
        #expect(Self.eventually(timeout: 10) { workers.allSatisfy(Self.processGone) }, "workers outlived volt-vmm")
        #expect(try Self.eventually(timeout: 5) { try !Self.links(ns).contains("tap-kill") }, "a TAP outlived SIGKILL")
    }

    @Test func theTapGoesWhenTheWorkerCrashes() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        // Fail-stop, so the VM ends with the worker (with restarts it would carry on).
        let vm = try Self.waitingVM(ns, guest: guest, id: "crash", nets: ["bridge=br0"], extra: ["--restart=never"])
        defer { vm.stop() }
        #expect(try Self.links(ns).contains("tap-crash"))
        let worker = try #require(Self.workerPIDs(vm.stderr).first)
        kill(worker, SIGKILL)
        // The supervisor stops the VM (exit 1) and volt-vmm's own fds go with it.
        #expect(vm.wait(timeout: 10))
        #expect(vm.process.terminationStatus == 1, "stderr: \(vm.stderr)")
        #expect(try Self.eventually(timeout: 5) { try !Self.links(ns).contains("tap-crash") }, "the TAP outlived a worker crash")
    }

    @Test func aMissingBridgeIsNamed() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        var r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--net", "bridge=br9"], timeout: 30)
        #expect(r.status == 2)
        #expect(r.stderr == "volt-vmm: bridge br9 not found — create it (ip link add br9 type bridge) or install configs/networkd/10-volt-vmm-br0.*\n")
        r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run",
                                                     "--kernel", guest, "--net", "bridge=vp0"], timeout: 30)
        #expect(r.status == 2 && r.stderr.contains("vp0 is not a bridge"), "stderr: \(r.stderr)")
        #expect(try !Self.links(ns).contains("tap-"), "nothing is left behind")
    }

    static func temporaryDirectory(_ tag: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-networkd-\(tag)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func files(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    /// networkd is not running here: the units are written for the VM's lifetime, the
    /// fallback is logged, the TAP is created directly, and the units go on exit — after a
    /// SIGKILL of volt-vmm too (its launcher removes them when volt-vmm's socket closes).
    @Test(arguments: ["exit", "SIGTERM", "SIGKILL"]) func networkdModeFallsBackAndRemovesItsUnits(_ ending: String) throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        let dir = try Self.temporaryDirectory(ending)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // No peer answers: the guest waits ~5 s for a frame (the test looks at the files
        // meanwhile), then finishes by itself ("exit") or is stopped first ("SIGTERM").
        let name = ["exit": "nd-x", "SIGTERM": "nd-t", "SIGKILL": "nd-k"][ending]!
        let vm = try Self.waitingVM(ns, guest: guest, id: name, nets: ["bridge=br0,mode=networkd,queues=4"],
                                    env: ["VOLT_NETWORKD_DIR=\(dir)"], expect: ending == "exit" ? 1 : 100)
        defer { vm.stop() }
        #expect(Self.files(dir) == ["50-vm-\(name).netdev", "50-vm-\(name).network"])
        let netdev = try String(contentsOfFile: "\(dir)/50-vm-\(name).netdev", encoding: .utf8)
        let network = try String(contentsOfFile: "\(dir)/50-vm-\(name).network", encoding: .utf8)
        #expect(netdev.contains("[NetDev]\nName=tap-\(name)\nKind=tap\n") && netdev.contains("[Tap]\nVNetHeader=true\nMultiQueue=true\nPacketInfo=false\n"),
                "netdev: \(netdev)")
        #expect(network.contains("[Match]\nName=tap-\(name)\n") && network.contains("[Network]\nBridge=br0\nConfigureWithoutCarrier=yes\n"),
                "network: \(network)")
        #expect(vm.waitFor("mode=networkd: systemd-networkd is not running — falling back to creating tap-\(name) directly", timeout: 10),
                "stderr: \(vm.stderr)")
        #expect(try Self.links(ns).contains("tap-\(name)"))
        switch ending {
        case "exit":
            #expect(vm.wait(timeout: 30), "the guest did not finish")
            #expect(vm.process.terminationStatus == 0, "stderr: \(vm.stderr)")
        case "SIGTERM":
            #expect(vm.stop() == 128 + SIGTERM, "stderr: \(vm.stderr)")
        default:
            kill(vm.process.processIdentifier, SIGKILL)
            #expect(vm.wait(timeout: 10))
        }
        #expect(Self.eventually(timeout: 5) { Self.files(dir).isEmpty }, "units left behind: \(Self.files(dir))")
        if ending != "SIGKILL" {
            #expect(vm.stderr.contains("removed \(dir)/50-vm-\(name).netdev"), "stderr: \(vm.stderr)")
        }
        #expect(try Self.eventually(timeout: 5) { try !Self.links(ns).contains("tap-\(name)") })
    }

    /// With a networkctl that does what networkd would (creates the persistent TAP from the
    /// .netdev and bridges it), volt-vmm opens that TAP instead of creating one, and the TAP
    /// still goes with the VM (volt-vmm clears TUNSETPERSIST).
    @Test func networkdCreatedTapIsOpenedAndGoesWithTheVM() throws {
        guard let guest = Self.prerequisites() else { return }
        let ns = try Self.bridgeNamespace()
        defer { ns.delete() }
        let dir = try Self.temporaryDirectory("fake")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = "\(dir)/../volt-fake-networkctl-\(getpid())"
        try """
            #!/bin/sh
            # Stand-in for networkctl reload: realise every .netdev/.network in \(dir).
            [ "$1" = reload ] || exit 1
            for f in \(dir)/*.netdev; do
                [ -e "$f" ] || continue
                name=$(sed -n 's/^Name=//p' "$f")
                bridge=$(sed -n 's/^Bridge=//p' "${f%.netdev}.network")
                ip link show "$name" >/dev/null 2>&1 || ip tuntap add dev "$name" mode tap vnet_hdr || exit 1
                ip link set "$name" master "$bridge" up || exit 1
            done
            """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { unlink(script) }
        chmod(script, 0o755)
        let peer = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, "python3", Self.peerScript, "vp0",
                                                   "--expect-tx", "3", "--send", "1", "--timeout", "30"])
        defer { peer.stop() }
        #expect(peer.waitFor("ready", timeout: 10))
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", ns.name, "/usr/bin/env", "VOLT_NETWORKD_DIR=\(dir)",
                                                         "VOLT_NETWORKCTL=\(script)", TestEnvironment.voltVMM, "run",
                                                         "--kernel", guest, "--cmdline", "net.count=3 net.expect=1",
                                                         "--id", "fake", "--net", "bridge=br0,mode=networkd", "--log-level", "info"],
                                        timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("net0: TAP tap-fake on bridge br0 (created by systemd-networkd)"), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("falling back"), "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST net: received=1"), "stdout: \(r.stdout)")
        #expect(peer.wait(timeout: 10))
        #expect(Self.files(dir).isEmpty, "units left behind: \(Self.files(dir))")
        #expect(try Self.eventually(timeout: 5) { try !Self.links(ns).contains("tap-fake") }, "networkd's TAP outlived the VM")
    }
}
