import Foundation
import Testing
import VoltTestSupport

/// `volt-vmm run` as an operator sees it: bad input is one line naming the fix, exit 2,
/// and nothing is left behind.
@Suite struct RunCommandInputTests {
    func run(_ args: [String]) throws -> TestEnvironment.Result {
        try TestEnvironment.runVMM(["run"] + args, timeout: 30)
    }

    func expectUsageError(_ args: [String], mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run(args)
        #expect(r.status == 2, "exit status for \(args)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one line, got: \(r.stderr)", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(r.stderr.contains(word), "stderr should mention \(word): \(r.stderr)", sourceLocation: sourceLocation)
        }
    }

    static let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("volt-run-tests-\(getpid())")

    func textFile() throws -> String {
        try FileManager.default.createDirectory(at: Self.tmp, withIntermediateDirectories: true)
        let path = Self.tmp.appendingPathComponent("notes.txt").path
        try "not a kernel\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func missingKernel() throws {
        try expectUsageError(["--kernel", "/nonexistent/vmlinux"], mentions: ["/nonexistent/vmlinux"])
    }

    @Test func notAKernel() throws {
        try expectUsageError(["--kernel", try textFile()], mentions: ["not a Linux kernel"])
    }

    @Test func memoryBounds() throws {
        let kernel = try textFile()
        try expectUsageError(["--kernel", kernel, "--memory", "4"], mentions: ["--memory", "at least"])
        try expectUsageError(["--kernel", kernel, "--memory", "100000000"], mentions: ["--memory", "host"])
    }

    @Test func vcpuBounds() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm (vCPU limit comes from KVM)") else { return }
        guard let guest = TestEnvironment.guest("hello") else {
            Issue.record("test guests did not build (make -C guests)")
            return
        }
        try expectUsageError(["--kernel", guest, "--vcpus", "0"], mentions: ["--vcpus"])
        try expectUsageError(["--kernel", guest, "--vcpus", "1000"], mentions: ["--vcpus", "allows"])
    }

    @Test func missingInitrd() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm") else { return }
        guard let guest = TestEnvironment.guest("hello") else {
            Issue.record("test guests did not build (make -C guests)")
            return
        }
        try expectUsageError(["--kernel", guest, "--initrd", "/nonexistent.cpio"], mentions: ["/nonexistent.cpio"])
    }
}

/// /dev/kvm missing or not accessible: one line naming the fix, non-zero exit.
@Suite struct KVMAccessTests {
    func guestForAccessTests() -> String? {
        guard TestEnvironment.require(getuid() == 0, "root (to hide /dev/kvm in a mount namespace and to drop to nobody)") else { return nil }
        guard let hello = TestEnvironment.guest("hello") else {
            Issue.record("test guests did not build (make -C guests)")
            return nil
        }
        return hello
    }

    @Test func missingDevKVM() throws {
        guard let hello = guestForAccessTests() else { return }
        let r = try TestEnvironment.run("/usr/bin/unshare", ["-m", "sh", "-c",
            "mount -t tmpfs tmpfs /dev && exec \(TestEnvironment.voltVMM) run --kernel \(hello)"])
        #expect(r.status == 1)
        #expect(r.stderr == "volt-vmm: /dev/kvm: not found — enable virtualization and load the kvm module (modprobe kvm_intel or kvm_amd)\n")
    }

    @Test func devKVMNotAccessible() throws {
        guard let hello = guestForAccessTests() else { return }
        var info = stat()
        guard stat("/dev/kvm", &info) == 0, info.st_mode & 0o006 == 0 else {
            print("⚠️  /dev/kvm is world-accessible here; the permission test has nothing to deny")
            return
        }
        let r = try TestEnvironment.run("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                                            TestEnvironment.voltVMM, "run", "--kernel", hello])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/dev/kvm: permission denied — run as root or add the user to group kvm"), "\(r.stderr)")
    }
}
