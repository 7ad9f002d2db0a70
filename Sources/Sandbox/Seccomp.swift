import CSeccomp
import Glibc

/// What a filtered process meets when it calls something not on its list.
public enum SeccompMode: String, Sendable, Equatable {
    /// SECCOMP_RET_KILL_PROCESS: the whole worker dies with SIGSYS (production).
    case kill
    /// SECCOMP_RET_LOG: the call runs and the kernel logs it (audit/dmesg). Debugging
    /// only: it enforces nothing.
    case log
}

/// Compiles rules with libseccomp and loads them into the calling thread.
enum Seccomp {
    static func load(_ rules: [SeccompRule], mode: SeccompMode) throws(SandboxError) {
        let defaultAction: UInt32 = mode == .kill ? SCMP_ACT_KILL_PROCESS : 0x7ffc_0000 /* SCMP_ACT_LOG */
        guard let ctx = seccomp_init(defaultAction) else { throw .seccomp("seccomp_init", errno: ENOMEM) }
        defer { seccomp_release(ctx) }
        // The filter is for x86_64 only: a 32-bit (int 0x80 / x32) syscall gets the default action.
        for rule in rules {
            let nr = seccomp_syscall_resolve_name(rule.syscall)
            guard nr != __NR_SCMP_ERROR else { throw .unknownSyscall(rule.syscall) }
            let action: UInt32
            switch rule.action {
            case .allow: action = SCMP_ACT_ALLOW
            case let .fail(e): action = 0x0005_0000 | (UInt32(e) & 0xffff)   // SCMP_ACT_ERRNO(e)
            }
            var args = rule.conditions.map {
                scmp_arg_cmp(arg: $0.index, op: SCMP_CMP_MASKED_EQ, datum_a: $0.mask, datum_b: $0.value)
            }
            let r = seccomp_rule_add_array(ctx, action, nr, UInt32(args.count), &args)
            guard r == 0 else { throw .seccomp("seccomp_rule_add \(rule)", errno: -r) }
        }
        StartupTrace.mark("seccomp: rules added (libseccomp)")
        let r = seccomp_load(ctx)
        StartupTrace.mark("seccomp: BPF generated and loaded (libseccomp)")
        guard r == 0 else { throw .seccomp("seccomp_load", errno: -r) }
    }

    /// Distinct system calls a rule list lets through (for the security report).
    static func allowedSyscallCount(_ rules: [SeccompRule]) -> Int {
        Set(rules.filter { $0.action == .allow }.map(\.syscall)).count
    }
}

extension Sandbox {
    /// Rules naming a system call libseccomp does not know for this architecture (a
    /// typo would otherwise only show when the filter is loaded).
    public static func unknownSyscalls(_ rules: [SeccompRule]) -> [String] {
        rules.map(\.syscall).filter { seccomp_syscall_resolve_name($0) == __NR_SCMP_ERROR }
    }
}

extension Sandbox {
    /// Loads `rules` into the calling thread only (no TSYNC): the VMM filters each thread
    /// class separately, e.g. its vCPU threads, which need very little.
    public static func filterThisThread(_ rules: [SeccompRule], mode: SeccompMode) throws(SandboxError) {
        try Seccomp.load(rules, mode: mode)
    }
}

extension Sandbox {
    /// The x86_64 name of system call `number` ("socket" for 41), as libseccomp knows it.
    public static func syscallName(_ number: Int32) -> String? {
        guard let name = seccomp_syscall_resolve_num_arch(0 /* SCMP_ARCH_NATIVE */, number) else { return nil }
        defer { free(name) }
        return String(cString: name)
    }
}
