import Foundation
import Testing
import VoltTestSupport
@testable import VMM

/// Snapshots of running VMs restored in new volt-vmm processes, under KVM: the guest
/// continues where it stopped (its count, its memory, its disk writes, its NIC), twice
/// at once from one snapshot, and bad snapshot files are refused.
@Suite(.serialized) struct SnapshotRestoreTests {
    func guest(_ name: String) -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let path = TestEnvironment.guest(name) else {
            Issue.record("test guest \(name) did not build (make -C guests)")
            return nil
        }
        return path
    }

    /// "count=K sum=S check=C" lines of the counter guest; a line still being printed
    /// (no newline yet) is left for later.
    static func counts(_ stdout: String) -> [(count: Int, sum: String, ok: Bool)] {
        let complete = stdout.hasSuffix("\n") ? Substring(stdout) : stdout[..<(stdout.lastIndex(of: "\n") ?? stdout.startIndex)]
        return complete.split(whereSeparator: \.isNewline).compactMap { line in
            guard line.hasPrefix("VOLT-GUEST counter: count=") else { return nil }
            let f = Dictionary(line.split(separator: " ").dropFirst(2).compactMap { pair -> (String, String)? in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
            }, uniquingKeysWith: { $1 })
            guard let k = f["count"].flatMap({ Int($0) }), let s = f["sum"] else { return nil }
            return (k, s, f["check"] == "ok")
        }
    }

    static func waitFor(_ condition: () -> Bool, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func fileDigest(_ path: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: path))).map { "\($0.count)-\(NICIdentity.fnv1a(Array($0)))" }
    }

    /// A counter guest with the API and a snapshot directory, snapshotted once it has
    /// printed `after` lines: (the VM, the snapshot directory, the last count before it).
    func snapshottedCounter(_ dir: URL, tag: String, after: Int = 3, arguments: [String] = []) throws -> (APIVM, String, Int)? {
        guard let counter = guest("counter") else { return nil }
        let vm = try APIVM(socket: apiSocketPath(tag), arguments: ["--kernel", counter, "--cmdline", "counter.kib=64 counter.ms=100",
                                                                   "--snapshot-dir", dir.path, "--log-level", "info"] + arguments)
        #expect(vm.ready(), "stderr: \(vm.stderr)")
        #expect(Self.waitFor({ Self.counts(vm.stdout).count >= after }, timeout: 30), "\(vm.stdout)")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        usleep(200_000)   // what the guest printed before the pause reaches the pipe
        let last = Self.counts(vm.stdout).last?.count ?? 0
        let snapshot = dir.appendingPathComponent("snap").path
        let r = try TestEnvironment.runVMM(["snapshot", "--api-sock", vm.socket, snapshot], timeout: 60)
        #expect(r.status == 0, "volt-vmm snapshot: \(r.stderr)")
        #expect(Self.counts(vm.stdout).last?.count == last, "nothing ran while paused")
        return (vm, snapshot, last)
    }

    @Test func theCounterContinuesInANewProcessTwiceAtOnce() throws {
        let dir = try makeTemporaryDirectory("snap-counter")
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let (vm, snapshot, last) = try snapshottedCounter(dir, tag: "counter") else { return }
        defer { vm.process.stop() }
        let digests = ["state", "memory"].map { fileDigest(snapshot + "/" + $0) }
        // The original goes on as if nothing happened.
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        #expect(Self.waitFor({ (Self.counts(vm.stdout).last?.count ?? 0) >= last + 3 }, timeout: 30))
        let original = Self.counts(vm.stdout)
        #expect(original.allSatisfy { $0.ok }, "the original's memory stayed right: \(original)")
        vm.process.stop()

        // Two restores of the one snapshot at once, in new processes.
        let restores = try (0..<2).map { _ in try Background(TestEnvironment.voltVMM, ["run", "--restore", snapshot, "--log-level", "info"]) }
        defer { restores.forEach { $0.stop() } }
        for restored in restores {
            #expect(Self.waitFor({ Self.counts(restored.stdout).count >= 3 }, timeout: 30), "stdout: \(restored.stdout) stderr: \(restored.stderr)")
            let lines = Self.counts(restored.stdout)
            #expect(lines.first?.count == last + 1, "the count goes on from the snapshot's \(last): \(lines.map(\.count))")
            #expect(lines.allSatisfy { $0.ok }, "the restored memory checks: \(lines)")
            for line in lines {
                if let same = original.first(where: { $0.count == line.count }) {
                    #expect(same.sum == line.sum, "count \(line.count): the same memory as the original had")
                }
            }
            #expect(restored.stderr.contains("restore: ") && restored.stderr.contains("KiB of guest memory read"), "\(restored.stderr)")
        }
        restores.forEach { $0.stop() }
        #expect(["state", "memory"].map { fileDigest(snapshot + "/" + $0) } == digests, "restored VMs never write the snapshot files")
    }

    /// Requests in flight when the snapshot is taken (each takes 20 ms in the worker) are
    /// neither lost nor repeated: the restored guest finishes its writes on a copy of the
    /// image and reads every one back; its worker is jailed as after a boot.
    @Test func diskWritesInFlightFinishAfterARestore() throws {
        guard let blk = guest("virtio_blk") else { return }
        let dir = try makeTemporaryDirectory("snap-disk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 4 << 20))
        let vm = try APIVM(socket: apiSocketPath("snapdisk"), arguments: ["--kernel", blk, "--disk", "path=\(image)", "--fault", "disk0:delay,ms=20",
                                                                        "--cmdline", "blk.seed=9 blk.start=5 blk.sectors=160",
                                                                        "--snapshot-dir", dir.path, "--log-level", "info"])
        defer { vm.process.stop() }
        #expect(vm.ready() && vm.process.waitFor("capacity=", timeout: 30), "\(vm.stdout) \(vm.stderr)")
        usleep(300_000)   // part of the writes done, some in flight
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        let snapshot = dir.appendingPathComponent("snap").path
        let r = try TestEnvironment.runVMM(["snapshot", "--api-sock", vm.socket, snapshot], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        let copy = dir.appendingPathComponent("copy.img").path
        try FileManager.default.copyItem(atPath: image, toPath: copy)   // the disk as the snapshot saw it
        vm.process.stop()
        #expect(!vm.stdout.contains("wrote="), "the snapshot was taken before the guest finished: \(vm.stdout)")

        let restoredSocket = apiSocketPath("snapdisk2")
        let restored = try APIVM(socket: restoredSocket, command: [TestEnvironment.voltVMM, "run", "--restore", snapshot, "--override", "disk0=\(copy)",
                                                                   "--api-sock", restoredSocket, "--restore-paused", "--log-level", "info"])
        defer { restored.process.stop() }
        #expect(restored.ready(), "\(restored.stderr)")
        #expect(Self.waitFor({ restored.state() == "Paused" }, timeout: 30), "\(restored.stderr)")
        #expect(restored.process.waitFor("spawned volt-blk-worker pid", timeout: 10))
        for pid in TestEnvironment.spawnedWorkerPIDs(restored.stderr) {
            let jail = SandboxInspection.status(pid)
            #expect(jail["Seccomp"] == "2" && jail["NoNewPrivs"] == "1" && jail["CapEff"] == "0000000000000000", "jailed after restore: \(jail)")
        }
        #expect(restored.stderr.contains(copy), "the worker serves the copy: \(restored.stderr)")
        #expect(restored.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        #expect(restored.exitStatus() == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("wrote=160 flushed=yes verified=160 mismatches=0"), "\(restored.stdout)")
        #expect(try BlockPattern.mismatches(image: copy, seed: 9, sectors: 5..<165).isEmpty, "every write is on the copy")
    }

    @Test func aNICPassesFramesAfterARestore() throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)"),
              let net = guest("virtio_net") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let dir = try makeTemporaryDirectory("snap-net")
        defer { try? FileManager.default.removeItem(at: dir) }
        let socket = apiSocketPath("snapnet")
        let vm = try APIVM(socket: socket, command: ["/usr/sbin/ip", "netns", "exec", ns.name, TestEnvironment.voltVMM, "run", "--api-sock", socket,
                                                     "--kernel", net, "--net", "tap=\(ns.tap),mac=52:54:00:ab:cd:02", "--cmdline", "net.count=2 net.expect=1",
                                                     "--snapshot-dir", dir.path, "--log-level", "info"])
        defer { vm.process.stop() }
        // No peer yet: the guest sends into the TAP and waits for a frame.
        #expect(vm.ready() && vm.process.waitFor("VOLT-GUEST net: sent=2", timeout: 30), "\(vm.stdout) \(vm.stderr)")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        let snapshot = dir.appendingPathComponent("snap").path
        let r = try TestEnvironment.runVMM(["snapshot", "--api-sock", socket, snapshot], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        vm.process.stop()

        let restored = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, TestEnvironment.voltVMM, "run", "--restore", snapshot, "--log-level", "info"])
        defer { restored.stop() }
        // Frames reach the guest once the restored VMM holds the TAP (its worker spawned).
        #expect(restored.waitFor("spawned volt-net-worker", timeout: 30), "\(restored.stderr)")
        let peer = try ns.peer(["--expect-tx", "0", "--send", "1", "--send-first", "--timeout", "30"])
        defer { peer.stop() }
        #expect(restored.wait(timeout: 60), "the restored guest finishes")
        #expect(restored.stdout.contains("VOLT-GUEST net: received=1 other=0"), "stdout: \(restored.stdout) stderr: \(restored.stderr)")
        #expect(restored.stderr.contains("spawned volt-net-worker"), "\(restored.stderr)")
    }

    @Test func badSnapshotFilesAreRefusedWithOneLine() throws {
        let dir = try makeTemporaryDirectory("snap-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let (vm, snapshot, _) = try snapshottedCounter(dir, tag: "bad", after: 1) else { return }
        vm.process.stop()
        let state = try Data(contentsOf: URL(fileURLWithPath: snapshot + "/state"))
        let memory = snapshot + "/memory"

        func refused(_ name: String, state bytes: Data? = nil, memoryBytes: UInt64? = nil, _ words: String) throws {
            let bad = dir.appendingPathComponent(name).path
            try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
            try (bytes ?? state).write(to: URL(fileURLWithPath: bad + "/state"))
            try FileManager.default.copyItem(atPath: memory, toPath: bad + "/memory")
            if let memoryBytes { #expect(truncate(bad + "/memory", off_t(memoryBytes)) == 0) }
            let r = try TestEnvironment.runVMM(["run", "--restore", bad], timeout: 30)
            #expect(r.status == 2, "\(name): exit \(r.status), \(r.stderr)")
            let lines = r.stderr.split(whereSeparator: \.isNewline).filter { !$0.contains(": info: ") && !$0.contains(": notice: ") }
            #expect(lines.count == 1 && lines[0].contains(words), "\(name): \(r.stderr)")
            #expect(!r.stdout.contains("VOLT-GUEST"), "\(name): nothing ran")
        }
        try refused("truncated", state: state.prefix(state.count / 2), "truncated")
        var flipped = state
        flipped[flipped.count - 10] ^= 0x20
        try refused("corrupted", state: flipped, "checksum")
        var version = state
        version[8] = 99
        try refused("version", state: version, "format version 99")
        try refused("not-a-snapshot", state: Data("{\"hello\": 1}".utf8), "not a volt-vmm snapshot")
        try refused("short-memory", memoryBytes: 1 << 20, "memory file of 1048576 bytes")
        // A CPU feature this host does not have (every bit of leaf 7's EBX), checksum redone.
        var parsed = try SnapshotFile.decode(Array(state), path: "state")
        for v in parsed.cpuid.indices {
            for e in parsed.cpuid[v].indices where parsed.cpuid[v][e].function == 7 && parsed.cpuid[v][e].index == 0 {
                parsed.cpuid[v][e].ebx = 0xffff_ffff
            }
        }
        try refused("cpu", state: Data(try SnapshotFile.encode(parsed)), "lacks")
        let described = try TestEnvironment.runVMM(["firecracker", "--describe-snapshot", snapshot + "/state"], timeout: 10)
        #expect(described.status == 0 && described.stdout == "v\(SnapshotFile.version).0.0\n", "\(described.stdout)")
        let missing = try TestEnvironment.runVMM(["run", "--restore", dir.appendingPathComponent("nothing-here").path], timeout: 30)
        #expect(missing.status == 2 && missing.stderr.contains("nothing-here/state"), "\(missing.stderr)")
    }

    /// A snapshot that cannot be written (a full file system; a path it may not write)
    /// fails with a fault, leaves no file behind, and the VM runs on.
    @Test func aFailedSnapshotLeavesNothingAndTheVMRunsOn() throws {
        guard getuid() == 0, let counter = guest("counter") else { return }
        let dir = try makeTemporaryDirectory("snap-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let small = dir.appendingPathComponent("small").path
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        #expect(try TestEnvironment.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", small], timeout: 10).status == 0)
        defer { _ = try? TestEnvironment.run("/usr/bin/umount", [small], timeout: 10) }
        let vm = try APIVM(socket: apiSocketPath("full"), arguments: ["--kernel", counter, "--cmdline", "counter.kib=256 counter.ms=100",
                                                                      "--snapshot-dir", small])
        defer { vm.process.stop() }
        #expect(vm.ready() && Self.waitFor({ Self.counts(vm.stdout).count >= 1 }, timeout: 30), "\(vm.stderr)")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        let full = vm.call("PUT", "/snapshot/create", #"{"snapshot_path": "\#(small)/state", "mem_file_path": "\#(small)/memory"}"#)
        #expect(full.status == 400 && full.fault.contains("No space left"), "\(full)")
        let outside = vm.call("PUT", "/snapshot/create", #"{"snapshot_path": "\#(dir.path)/state", "mem_file_path": "\#(small)/memory"}"#)
        #expect(outside.status == 400 && outside.fault.contains("--snapshot-dir"), "\(outside)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small).isEmpty, "no partial files")
        #expect(vm.call("PUT", "/snapshot/create", #"{"snapshot_path": "\#(small)/s", "mem_file_path": "\#(small)/m", "snapshot_type": "Diff"}"#).fault.contains("Full"))
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        let before = Self.counts(vm.stdout).count
        #expect(Self.waitFor({ Self.counts(vm.stdout).count >= before + 2 }, timeout: 30), "the VM runs on")
        #expect(Self.counts(vm.stdout).allSatisfy { $0.ok })
        // Running, not paused: refused.
        #expect(vm.call("PUT", "/snapshot/create", #"{"snapshot_path": "\#(small)/s", "mem_file_path": "\#(small)/m"}"#).fault.contains("paused"))
    }

    /// Firecracker's PUT /snapshot/load on a fresh volt-vmm: paused (resume_vm false),
    /// then resumed through the API.
    @Test func snapshotLoadThroughTheAPI() throws {
        let dir = try makeTemporaryDirectory("snap-load")
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let (vm, snapshot, last) = try snapshottedCounter(dir, tag: "load") else { return }
        vm.process.stop()
        let fresh = try APIVM(socket: apiSocketPath("load2"))
        defer { fresh.process.stop() }
        #expect(fresh.ready())
        let load = fresh.call("PUT", "/snapshot/load", #"{"snapshot_path": "\#(snapshot)/state", "mem_backend": {"backend_type": "File", "backend_path": "\#(snapshot)/memory"}, "resume_vm": false}"#)
        #expect(load.status == 204, "\(load) \(fresh.stderr)")
        #expect(fresh.state() == "Paused")
        let machine = fresh.call("GET", "/vm/config").json["machine-config"] as? [String: Any]
        #expect(machine?["vcpu_count"] as? Int == 1 && machine?["mem_size_mib"] as? Int == 256, "\(String(describing: machine))")
        usleep(300_000)
        #expect(Self.counts(fresh.stdout).isEmpty, "paused: nothing ran")
        #expect(fresh.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        #expect(Self.waitFor({ Self.counts(fresh.stdout).count >= 2 }, timeout: 30), "\(fresh.stdout) \(fresh.stderr)")
        #expect(Self.counts(fresh.stdout).first?.count == last + 1)
        #expect(fresh.call("PUT", "/snapshot/load", #"{"snapshot_path": "x", "mem_file_path": "y"}"#).fault.contains("after the microVM started"))
    }

    /// Real Linux where this host allows: the kernel gets as far as its early boot log
    /// (then KVM's emulator fails on PVM). Snapshotted after its banner and restored in a
    /// new process, it prints exactly what the original printed after that point, up to
    /// the same failure.
    @Test func linuxAtItsBannerPrintsTheSameNextLinesAfterARestore() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable"),
              TestEnvironment.require(TestEnvironment.storedKernel("vmlinux") != nil, "a stored kernel (volt-vmm kernel build)") else { return }
        let vmlinux = TestEnvironment.storedKernel("vmlinux")!
        let dir = try makeTemporaryDirectory("snap-linux")
        defer { try? FileManager.default.removeItem(at: dir) }
        let vm = try APIVM(socket: apiSocketPath("linux"), arguments: ["--kernel", vmlinux, "--memory", "256", "--snapshot-dir", dir.path])
        defer { vm.process.stop() }
        #expect(vm.ready() && vm.process.waitFor("Linux version 6.1", timeout: 60), "\(vm.stdout.suffix(500)) \(vm.stderr)")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Paused"}"#).status == 204)
        usleep(300_000)
        let printed = vm.stdout.utf8.count
        let snapshot = dir.appendingPathComponent("snap").path
        let r = try TestEnvironment.runVMM(["snapshot", "--api-sock", vm.socket, snapshot], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(vm.call("PATCH", "/vm", #"{"state": "Resumed"}"#).status == 204)
        _ = vm.exitStatus(timeout: 120)   // on this host: KVM's emulation failure, exit 1
        let after = String(decoding: Array(vm.stdout.utf8).dropFirst(printed), as: UTF8.self)

        let restored = try TestEnvironment.runVMM(["run", "--restore", snapshot], timeout: 120)
        #expect(!restored.timedOut)
        #expect(after.split(whereSeparator: \.isNewline).count >= 20, "the original printed on after the snapshot: \(after.prefix(300)) stderr: \(vm.stderr.suffix(500))")
        #expect(restored.stdout == after, "restored: \(restored.stdout.prefix(300)) — original after the snapshot: \(after.prefix(300))")
        #expect(restored.status == vm.process.process.terminationStatus, "the same end: \(restored.stderr.suffix(300))")
    }
}
