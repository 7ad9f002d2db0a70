import Testing
@testable import Sandbox

struct SandboxFlagsTests {
    @Test func parsesTheSandboxOptions() throws {
        var f = SandboxFlags()
        #expect(try f.parse("--seccomp", inline: "log", next: nil) == 1 && f.seccompMode == .log)
        #expect(try f.parse("--seccomp", inline: nil, next: "kill") == 2 && f.seccompMode == .kill)
        #expect(try f.parse("--no-sandbox", inline: nil, next: nil) == 1 && !f.enabled)
        #expect(try f.parse("--fault-forbidden-syscall", inline: nil, next: nil) == 1 && f.faultForbiddenSyscall)
        #expect(try f.parse("--probe-sandbox", inline: nil, next: nil) == 1 && f.probe)
        #expect(try f.parse("--tap", inline: nil, next: "x") == nil)
        #expect(throws: SandboxFlags.FlagError.self) { try f.parse("--seccomp", inline: "trap", next: nil) }
        #expect(throws: SandboxFlags.FlagError.self) { try f.parse("--no-sandbox", inline: "1", next: nil) }
        #expect(!SandboxFlags.usage.contains("--probe") && !SandboxFlags.usage.contains("--fault"), "test flags stay hidden")
    }
}
