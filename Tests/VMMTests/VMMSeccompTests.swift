import Foundation
import Testing
import VoltTestSupport
import Sandbox
@testable import VMM

/// volt-vmm filters each of its own threads (seccomp mode 2 on every task) and locks itself
/// down with Landlock once set up; the launcher it forks first stays as it was.
@Suite struct VMMSeccompTests {
    /// The `Seccomp:` (or `field`) line of each of the VMM's threads whose name starts with one
    /// of `prefix`, read while the guest runs. The launcher shares volt-vmm's command line: the
    /// VMM is the process named volt-vmm.
    func vcpuSeccompStates(_ extra: [String], threads prefix: [String] = ["volt-vcpu"], field: String = "Seccomp:",
                           kernel: String = "hello") throws -> [String] {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return [] }
        guard let hello = TestEnvironment.guest(kernel) else { Issue.record("guests did not build"); return [] }
        // Unique per call: tests run in parallel, and a marker shared by two VMs (say, one
        // from the argument count) lets pgrep find the other test's VM.
        let marker = "seccomp-probe-\(UUID().uuidString)"
        var states: [String] = []
        _ = try TestEnvironment.runVMM(["run", "--kernel", hello, "--vcpus", "2", "--cmdline", "halt \(marker)"] + extra,
                                       stopWhen: "VOLT-GUEST hello: ok",
                                       whenOutput: ("VOLT-GUEST hello: ok", {
            let pids = (try? TestEnvironment.run("/usr/bin/pgrep", ["-f", marker]).stdout.split(separator: "\n")) ?? []
            // volt-vmm, not its launcher (a fork: same name and command line). By parent,
            // not by pid order: pids wrap around on a long run.
            let named = pids.filter { Self.comm("/proc/\($0)") == "volt-vmm" }
            guard let pid = named.first(where: { !named.contains(Substring(Self.parent(of: $0))) }) else { return }
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            for tid in tasks {
                guard prefix.contains(where: { Self.comm("/proc/\(pid)/task/\(tid)").hasPrefix($0) }) else { continue }
                let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)) ?? ""
                states += status.split(separator: "\n").filter { $0.hasPrefix(field) }.map { String($0) }
            }
        }), timeout: 30)
        return states
    }

    /// PPid from /proc/PID/status ("" if gone).
    static func parent(of pid: Substring) -> String {
        pid_t(pid).flatMap { SandboxInspection.status($0)["PPid"] } ?? ""
    }

    static func comm(_ dir: String) -> String {
        ((try? String(contentsOfFile: "\(dir)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func vcpuThreadsAreFiltered() throws {
        let states = try vcpuSeccompStates([])
        guard TestEnvironment.kvmUsable else { return }
        #expect(states.count == 2, "both vCPU threads found: \(states)")
        #expect(states.allSatisfy { $0.hasSuffix("2") }, "\(states)")
    }

    @Test func signalConsoleAndMetricsThreadsAreFiltered() throws {
        let metrics = FileManager.default.temporaryDirectory.appendingPathComponent("volt-seccomp-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: metrics) }
        let states = try vcpuSeccompStates(["--metrics", metrics], threads: ["volt-signals", "volt-console", "volt-metrics"])
        guard TestEnvironment.kvmUsable else { return }
        #expect(states.count == 3 && states.allSatisfy { $0.hasSuffix("2") }, "\(states)")
    }

    @Test func noSeccompTurnsItOff() throws {
        let states = try vcpuSeccompStates(["--no-seccomp"])
        guard TestEnvironment.kvmUsable else { return }
        #expect(states.count == 2 && states.allSatisfy { $0.hasSuffix("0") }, "\(states)")
    }

    @Test func mainAndSupervisorThreadsAreFilteredWithNoNewPrivs() throws {
        let dir = try makeTemporaryDirectory("seccomp-main")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        // The guest keeps running (hello, no halt) until the states are read.
        let states = try vcpuSeccompStates(["--disk", "path=\(image)"], threads: ["volt-vmm", "volt-supervise"])
        let nnp = try vcpuSeccompStates(["--disk", "path=\(image)"], threads: ["volt-vmm"], field: "NoNewPrivs:")
        var caps: [String] = []   // main + 2 vCPU threads, 5 sets each
        for field in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
            caps += try vcpuSeccompStates(["--disk", "path=\(image)"], threads: ["volt-vmm", "volt-vcpu"], field: field)
        }
        guard TestEnvironment.kvmUsable else { return }
        #expect(states.count == 2 && states.allSatisfy { $0.hasSuffix("2") }, "main and supervisor threads: \(states)")
        #expect(nnp.count == 1 && nnp.allSatisfy { $0.hasSuffix("1") }, "\(nnp)")
        #expect(caps.count == 15 && caps.allSatisfy { $0.hasSuffix("0000000000000000") }, "no capabilities after setup: \(caps)")
    }

    /// After setup volt-vmm can read, list, create nothing and exec nothing (hidden --probe-lockdown).
    @Test func landlockDeniesFilesAndExecAfterSetup() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard let hello = TestEnvironment.guest("hello") else { Issue.record("guests did not build"); return }
        var r = try TestEnvironment.runVMM(["run", "--kernel", hello, "--probe-lockdown"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["open /etc/passwd", "open / (read dir)", "create /volt-probe", "mkdir /volt-probe-dir",
                     "open /proc/self/status", "exec /bin/true"] {
            #expect(r.stderr.contains("probe: \(line) -> errno 13 EACCES"), "\(line): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/volt-probe"))
        r = try TestEnvironment.runVMM(["run", "--kernel", hello, "--probe-lockdown", "--no-landlock"])
        #expect(r.stderr.contains("probe: open /etc/passwd -> ok") && r.stderr.contains("probe: exec /bin/true -> ok"), "\(r.stderr)")
        #expect(r.stderr.contains("--no-landlock"), "the unsafe flag is logged")
        rmdir("/volt-probe-dir")
        unlink("/volt-probe")
    }

    @Test func mainAndSupervisorPoliciesCannotExecOpenOrKill() {
        for rules in [VMMSeccompPolicy.main(), VMMSeccompPolicy.supervisor()] {
            #expect(Sandbox.unknownSyscalls(rules).isEmpty)
            let names = Set(rules.filter(\.allows).map(\.syscall))
            for forbidden in ["open", "openat", "socket", "execve", "execveat", "fork", "vfork", "clone", "clone3",
                              "kill", "mount", "ptrace", "connect", "bind"] {
                #expect(!names.contains(forbidden), "\(forbidden)")
            }
        }
    }

    @Test func vcpuPolicyIsSmallAndKnown() {
        let rules = VMMSeccompPolicy.vcpu(vcpuFD: 10, vmFD: 9)
        #expect(Sandbox.unknownSyscalls(rules).isEmpty)
        let names = Set(rules.filter(\.allows).map(\.syscall))
        for forbidden in ["open", "openat", "socket", "execve", "clone", "fork", "mount", "kill"] {
            #expect(!names.contains(forbidden), "\(forbidden) is not for vCPU threads")
        }
        #expect(Sandbox.allowedSyscallCount(rules) < 35)
    }

    /// The API thread: requests from anyone who can reach the socket land here.
    @Test func apiPolicyCannotOpenConnectOrExec() {
        let rules = VMMSeccompPolicy.api(listeningFD: 7)
        #expect(Sandbox.unknownSyscalls(rules).isEmpty && rules.allSatisfy { !$0.why.isEmpty })
        let names = Set(rules.filter(\.allows).map(\.syscall))
        for forbidden in ["open", "openat", "socket", "connect", "bind", "listen", "execve", "execveat", "fork", "vfork",
                          "clone", "clone3", "kill", "mount", "ptrace", "unlink", "unlinkat"] {
            #expect(!names.contains(forbidden), "\(forbidden) is not for the API thread")
        }
        #expect(rules.first { $0.syscall == "accept4" }?.conditions.isEmpty == false, "accept4 on the listening socket only")
        #expect(Sandbox.allowedSyscallCount(rules) == 26, "the figure docs/security.md reports")
        #expect(rules.count == 29, "filter entries")
    }

    /// The snapshot thread creates files, but only new ones, write-only (Landlock keeps
    /// them beneath --snapshot-dir); it cannot read a file, exec, connect or kill.
    @Test func snapshotPolicyCreatesOnlyNewFiles() {
        let rules = VMMSeccompPolicy.snapshot(vmFD: 9)
        #expect(Sandbox.unknownSyscalls(rules).isEmpty && rules.allSatisfy { !$0.why.isEmpty })
        let names = Set(rules.filter(\.allows).map(\.syscall))
        for forbidden in ["open", "openat2", "socket", "connect", "execve", "execveat", "fork", "vfork", "clone", "clone3",
                          "kill", "mount", "ptrace", "pread64", "readv"] {
            #expect(!names.contains(forbidden), "\(forbidden) is not for the snapshot thread")
        }
        let opens = rules.filter { $0.syscall == "openat" && $0.allows }
        #expect(opens.count == 1 && opens[0].conditions == [Arg(2) == UInt64(O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)], "\(opens)")
        #expect(Sandbox.allowedSyscallCount(rules) == 33, "the figure docs/security.md reports")
        #expect(rules.count == 47, "filter entries")
    }
}
