import Foundation
import Testing
import VoltTestSupport

/// `/run/volt-vmm/<id>` (here under VOLT_RUNTIME_DIR): present with the VMM's pid while the
/// VM runs, gone after every exit path, and a guard against two VMs with one id.
@Suite(.serialized) struct RuntimeDirectoryTests {
    func setup() throws -> (hello: String, base: URL)? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let hello = TestEnvironment.guest("hello") else { Issue.record("guests did not build"); return nil }
        return (hello, try makeTemporaryDirectory("runtime"))
    }

    func vmm(_ base: URL, _ args: [String], stopWhen: String? = nil,
             whenOutput: (String, () -> Void)? = nil) throws -> TestEnvironment.Result {
        try TestEnvironment.run("/usr/bin/env", ["VOLT_RUNTIME_DIR=\(base.path)", TestEnvironment.voltVMM, "run"] + args,
                                stopWhen: stopWhen, whenOutput: whenOutput, timeout: 30)
    }

    func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    @Test func presentWhileRunningGoneAfterSIGTERM() throws {
        guard let (hello, base) = try setup() else { return }
        defer { try? FileManager.default.removeItem(at: base) }
        let dir = base.appendingPathComponent("rt-term")
        var pidWhileRunning = ""
        var second: TestEnvironment.Result?
        let r = try vmm(base, ["--kernel", hello, "--id", "rt-term", "--cmdline", "halt"],
                        stopWhen: "VOLT-GUEST hello: ok",
                        whenOutput: ("VOLT-GUEST hello: ok", {
                            pidWhileRunning = (try? String(contentsOf: dir.appendingPathComponent("pid"), encoding: .utf8)) ?? ""
                            second = try? vmm(base, ["--kernel", hello, "--id", "rt-term"])
                        }))
        #expect(Int32(pidWhileRunning.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "pid file while running")
        #expect(second?.status == 2 && second?.stderr.contains("already running") == true, "one id, one VM: \(second?.stderr ?? "")")
        #expect(r.status == 128 + SIGTERM)
        #expect(!exists(dir), "removed after SIGTERM")
    }

    @Test func goneAfterGuestResetAndStaleOneIsReplaced() throws {
        guard let (hello, base) = try setup() else { return }
        defer { try? FileManager.default.removeItem(at: base) }
        let dir = base.appendingPathComponent("rt-stale")
        // A VM that was SIGKILLed left its directory behind; its pid is long gone.
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "999999\n".write(to: dir.appendingPathComponent("pid"), atomically: true, encoding: .utf8)
        let r = try vmm(base, ["--kernel", hello, "--id", "rt-stale"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!exists(dir), "removed after the guest reset")
    }

    @Test func goneAfterAWorkerFailure() throws {
        guard let (_, base) = try setup() else { return }
        defer { try? FileManager.default.removeItem(at: base) }
        guard let blk = TestEnvironment.guest("virtio_blk") else { Issue.record("guests did not build"); return }
        let disk = base.appendingPathComponent("disk.img")
        FileManager.default.createFile(atPath: disk.path, contents: Data(count: 64 << 20))
        // Kill this test's own worker (unique serial) once the guest is doing I/O.
        let serial = "rt\(getpid())"
        let r = try vmm(base, ["--kernel", blk, "--id", "rt-crash", "--restart=never",
                               "--disk", "path=\(disk.path),serial=\(serial)", "--cmdline", "blk.sectors=100000"],
                        whenOutput: ("capacity=", {
                            _ = try? TestEnvironment.run("/usr/bin/pkill", ["-KILL", "-f", "volt-blk-worker.*--serial \(serial)"])
                        }))
        #expect(r.status == 1 && r.stderr.contains("killed by signal 9"), "\(r.stderr)")
        #expect(!exists(base.appendingPathComponent("rt-crash")), "removed after the worker failure")
    }
}
