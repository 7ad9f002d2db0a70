import Foundation
import Testing
import VoltTestSupport
import Sandbox
@testable import VMMMain

/// volt-vmm filters its own vCPU threads (seccomp mode 2 on each volt-vcpuN task).
@Suite struct VMMSeccompTests {
    /// The Seccomp: field of each of the VMM's threads named volt-vcpu*, read while the guest runs.
    func vcpuSeccompStates(_ extra: [String], threads prefix: [String] = ["volt-vcpu"]) throws -> [String] {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return [] }
        guard let hello = TestEnvironment.guest("hello") else { Issue.record("guests did not build"); return [] }
        let marker = "seccomp-probe-\(getpid())-\(extra.count)"
        var states: [String] = []
        _ = try TestEnvironment.runVMM(["run", "--kernel", hello, "--vcpus", "2", "--cmdline", "halt \(marker)"] + extra,
                                       stopWhen: "VOLT-GUEST hello: ok",
                                       whenOutput: ("VOLT-GUEST hello: ok", {
            guard let pid = try? TestEnvironment.run("/usr/bin/pgrep", ["-f", marker]).stdout
                .split(separator: "\n").first else { return }
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            for tid in tasks {
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8)) ?? ""
                guard prefix.contains(where: { comm.hasPrefix($0) }) else { continue }
                let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)) ?? ""
                states += status.split(separator: "\n").filter { $0.hasPrefix("Seccomp:") }.map { String($0) }
            }
        }), timeout: 30)
        return states
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

    @Test func vcpuPolicyIsSmallAndKnown() {
        let rules = VMMSeccompPolicy.vcpu(vcpuFD: 10, vmFD: 9)
        #expect(Sandbox.unknownSyscalls(rules).isEmpty)
        let names = Set(rules.map(\.syscall))
        for forbidden in ["open", "openat", "socket", "execve", "clone", "fork", "mount", "kill"] {
            #expect(!names.contains(forbidden), "\(forbidden) is not for vCPU threads")
        }
        #expect(Sandbox.allowedSyscallCount(rules) < 35)
    }
}
