import Foundation
import Testing
import VoltTestSupport
@testable import VMM

/// The shipped examples load, and boot where their devices can exist here.
@Suite(.serialized) struct ConfigExamplesTests {
    static let examples = TestEnvironment.repositoryRoot.appendingPathComponent("configs/examples")

    @Test(arguments: ["minimal.json", "disk.json", "multi-nic.json"]) func exampleLoads(_ name: String) throws {
        let config = try VMConfigFile.load(path: Self.examples.appendingPathComponent(name).path)
        #expect(config.kernel == "default")
        #expect(config.vcpus != nil && config.memoryMiB != nil)
    }

    @Test func multiNicExampleBecomesSpecsAndIPArgument() throws {
        let config = try VMConfigFile.load(path: Self.examples.appendingPathComponent("multi-nic.json").path)
        #expect(config.networks == ["bridge=br0,mode=networkd,id=mgmt,mac=52:54:00:12:34:56,mtu=1500,vhost=on",
                                    "bridge=br-data,id=data,mac=52:54:00:12:34:57,mtu=9000,queues=4"])
        #expect(config.kernelIPArgument == "ip=10.42.0.10::10.42.0.1:255.255.255.0::eth0:off")
    }

    @Test func minimalExampleBootsWithItsSizes() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard let facts = TestEnvironment.guest("facts") else { Issue.record("guests did not build"); return }
        // The file's vCPUs and memory; the kernel overridden on the command line.
        let r = try TestEnvironment.runVMM(["run", "--config", Self.examples.appendingPathComponent("minimal.json").path,
                                            "--kernel", facts])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("FACT mp_cpus=2"))
        #expect(r.stdout.contains("FACT ram_bytes=\((256 << 20) - 0x100000 + 0x9fc00)"))
        #expect(r.stdout.contains("FACT cmdline=console=ttyS0 reboot=k panic=-1"))
        let o = try TestEnvironment.runVMM(["run", "--config", Self.examples.appendingPathComponent("minimal.json").path,
                                            "--kernel", facts, "--vcpus", "1", "--memory", "64"])
        #expect(o.stdout.contains("FACT mp_cpus=1") && o.stdout.contains("FACT ram_bytes=\((64 << 20) - 0x100000 + 0x9fc00)"),
                "flags override the file")
    }

    @Test func diskExampleBootsWithBothDisks() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard let blk = TestEnvironment.guest("virtio_blk") else { Issue.record("guests did not build"); return }
        let dir = try makeTemporaryDirectory("example-disk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("disk.json").path
        try FileManager.default.copyItem(atPath: Self.examples.appendingPathComponent("disk.json").path, toPath: config)
        for name in ["rootfs.img", "data.img"] {
            FileManager.default.createFile(atPath: dir.appendingPathComponent(name).path, contents: Data(count: 2 << 20))
        }
        let r = try TestEnvironment.runVMM(["run", "--config", config, "--kernel", blk, "--log-level", "info",
                                            "--cmdline", "blk.seed=2 blk.sectors=32"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote=32 flushed=yes verified=32 mismatches=0"), "\(r.stdout)")
        #expect(r.stderr.contains("rootfs.img") && r.stderr.contains("data.img"), "paths resolved next to the config file")
        #expect(r.stderr.contains("rng2: spawned volt-rng-worker") && r.stderr.contains("at most 1048576 bytes per 1000 ms"),
                "the example's entropy device: \(r.stderr)")
        #expect(try BlockPattern.mismatches(image: dir.appendingPathComponent("rootfs.img").path, seed: 2, sectors: 0..<32).isEmpty)
    }

    @Test func invalidConfigListsEveryProblemAndCreatesNothing() throws {
        let dir = try makeTemporaryDirectory("bad-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("vm.json").path
        try #"{"vcpus": 0, "network": [{"tap": "t0", "mac": "52:54:zz:00:00:01"}], "extra": true}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let r = try TestEnvironment.runVMM(["run", "--config", config])
        #expect(r.status == 2)
        #expect(r.stderr.contains("3 problems"), "\(r.stderr)")
        #expect(r.stderr.contains("vcpus: 0 is out of range") && r.stderr.contains("network[0].mac") && r.stderr.contains("extra: unknown key"))
    }
}
