import Sandbox
import Testing
@testable import BlockWorker

struct SeccompPolicyTests {
    static let writable = SeccompPolicy.rules(socket: 3, imageFDs: [4], readOnly: false)

    @Test func everyRuleNamesAKnownSyscallAndSaysWhy() {
        #expect(Sandbox.unknownSyscalls(Self.writable).isEmpty)
        #expect(Self.writable.allSatisfy { !$0.why.isEmpty })
    }

    @Test func nothingOpensPathsCreatesSocketsOrProcesses() {
        let names = Set(Self.writable.filter(\.allows).map(\.syscall))
        #expect(names.isDisjoint(with: BasePolicy.neverAllowed), "\(names.intersection(BasePolicy.neverAllowed))")
        // Named at all only to fail with an errno, on conditions (glibc malloc's openat).
        #expect(Self.writable.filter { BasePolicy.neverAllowed.contains($0.syscall) }.map(\.description) == ["openat if arg2 == 0x80000 -> errno 13"])
        #expect(!names.contains("ioctl"))
        // clone only for threads; clone3 fails (ENOSYS) instead of running.
        #expect(Self.writable.first { $0.syscall == "clone" }?.conditions.isEmpty == false)
        #expect(Self.writable.first { $0.syscall == "clone3" }?.action == .fail(errno: 38))
    }

    @Test func readOnlyDiskCannotWrite() {
        let ro = Set(SeccompPolicy.rules(socket: 3, imageFDs: [4], readOnly: true).map(\.syscall))
        for call in ["pwritev", "pwrite64", "fallocate"] { #expect(!ro.contains(call)) }
        #expect(ro.contains("preadv"))
    }

    /// The figure docs/security.md reports.
    @Test func allowedSyscallCount() {
        #expect(Sandbox.allowedSyscallCount(Self.writable) == 36)
        #expect(Self.writable.count == 44, "filter entries")
    }
}
