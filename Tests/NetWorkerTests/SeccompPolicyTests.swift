import Sandbox
import Testing
@testable import NetWorker

struct SeccompPolicyTests {
    static let rules = SeccompPolicy.rules(socket: 3, tapFDs: [4, 5])

    @Test func everyRuleNamesAKnownSyscallAndSaysWhy() {
        #expect(Sandbox.unknownSyscalls(Self.rules).isEmpty)
        #expect(Self.rules.allSatisfy { !$0.why.isEmpty })
    }

    @Test func nothingOpensPathsCreatesSocketsOrProcesses() {
        let names = Set(Self.rules.filter(\.allows).map(\.syscall))
        #expect(names.isDisjoint(with: BasePolicy.neverAllowed), "\(names.intersection(BasePolicy.neverAllowed))")
        // Named at all only to fail with an errno, on conditions (glibc malloc's openat).
        #expect(Self.rules.filter { BasePolicy.neverAllowed.contains($0.syscall) }.map(\.description) == ["openat if arg2 == 0x80000 -> errno 13"])
    }

    @Test func ioctlOnlyTheTwoTapRequestsOnTapFds() {
        let ioctls = Self.rules.filter { $0.syscall == "ioctl" }
        #expect(ioctls.count == 4)   // 2 requests x 2 TAP fds
        #expect(ioctls.allSatisfy { $0.conditions.count == 2 })
        #expect(Set(ioctls.map { $0.conditions[0].value }) == [4, 5])
    }

    /// The figure docs/security.md reports.
    @Test func allowedSyscallCount() {
        #expect(Sandbox.allowedSyscallCount(Self.rules) == 33)
        #expect(Self.rules.count == 43, "filter entries: 41 with one TAP queue, +2 per extra one")
    }
}
