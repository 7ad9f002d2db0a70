import CShim
import Glibc

/// What a worker asks of the sandbox; computed from its options.
public struct SandboxPlan: Sendable {
    /// RLIMIT_NOFILE: the most fds the worker may hold (incoming SCM_RIGHTS fds included).
    public var maxOpenFiles: UInt64
    /// RLIMIT_FSIZE: nil = unlimited (the block worker writes its image), 0 = no file growth.
    public var maxFileSize: UInt64?
    /// A new network namespace (the worker reaches no network; a TAP fd keeps working).
    public var newNetworkNamespace = true
    /// The complete seccomp allowlist (BasePolicy + the device's rules).
    public var seccomp: [SeccompRule]
    public var seccompMode: SeccompMode = .kill
    /// nil: an empty read-only tmpfs is the root. A directory (absolute, resolved): a
    /// read-only bind mount of it is the root instead, so the worker reaches that
    /// directory's entries by path and nothing else (vsock: `<uds_path>_P` sockets).
    public var rootDirectory: String?

    public init(maxOpenFiles: UInt64, maxFileSize: UInt64?, seccomp: [SeccompRule]) {
        self.maxOpenFiles = maxOpenFiles; self.maxFileSize = maxFileSize; self.seccomp = seccomp
    }
}

/// What was applied.
public struct SandboxReport: Sendable, CustomStringConvertible {
    public var namespaces: [String] = []
    /// "pivot_root" or "chroot".
    public var root = ""
    public var landlockABI = 0
    public var allowedSyscalls = 0
    public var seccompMode = SeccompMode.kill

    public var description: String {
        "sandbox: namespaces \(namespaces.joined(separator: ",")), empty root via \(root), no capabilities, "
            + "no_new_privs, Landlock ABI \(landlockABI), seccomp \(seccompMode.rawValue) with \(allowedSyscalls) syscalls allowed"
    }
}

public enum SandboxError: Error, CustomStringConvertible {
    case threadsRunning(Int)
    case rlimit(String, errno: Int32)
    case namespaces(String, errno: Int32)
    case root(errno: Int32)
    case capabilities(String, errno: Int32)
    case noNewPrivs(errno: Int32)
    case landlock(String, errno: Int32)
    case seccomp(String, errno: Int32)
    case unknownSyscall(String)

    public var description: String {
        func e(_ n: Int32) -> String { String(cString: strerror(n)) + " (errno \(n))" }
        switch self {
        case let .threadsRunning(n):
            return "\(n) threads are running: the sandbox must be applied before any thread starts (seccomp and Landlock bind only the calling thread)"
        case let .rlimit(what, n): return "setrlimit(\(what)): \(e(n))"
        case let .namespaces(what, n):
            return "\(what): \(e(n)); run as root, or allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0)"
        case let .root(n): return "cannot switch to an empty root (tmpfs + pivot_root/chroot): \(e(n))"
        case let .capabilities(what, n): return "\(what): \(e(n))"
        case let .noNewPrivs(n): return "prctl(PR_SET_NO_NEW_PRIVS): \(e(n))"
        case let .landlock(what, n):
            return "\(what): \(e(n)); this kernel lacks Landlock (needs 5.13+ with lsm=landlock); --no-sandbox runs unprotected"
        case let .seccomp(what, n): return "\(what): \(e(n))"
        case let .unknownSyscall(name): return "seccomp: libseccomp does not know the system call \(name)"
        }
    }
}

public enum Sandbox {
    /// Applies, in this order: resource limits; new mount, IPC, UTS (and network)
    /// namespaces, in a new user namespace when not privileged; an empty read-only root;
    /// no core dumps or ptrace by peers; no_new_privs; no capabilities in any set;
    /// Landlock with every right the kernel knows and no rule; the seccomp allowlist.
    /// Must run before any thread is created. Every step is required: a failure is an error.
    public static func apply(_ plan: SandboxPlan) throws(SandboxError) -> SandboxReport {
        var report = SandboxReport()
        let threads = volt_thread_count()
        if threads > 1 { throw .threadsRunning(Int(threads)) }

        // 1. Resource limits (soft = hard, so they cannot be raised again).
        try limit("RLIMIT_CORE", VOLT_RLIMIT_CORE, 0)
        try limit("RLIMIT_NOFILE", VOLT_RLIMIT_NOFILE, plan.maxOpenFiles)
        try limit("RLIMIT_FSIZE", VOLT_RLIMIT_FSIZE, plan.maxFileSize ?? UInt64.max)
        StartupTrace.mark("jail: rlimits")
        // RLIMIT_NPROC is not set: it counts every process and thread of the real uid on
        // the host (all VMMs and workers of that user), and root ignores it. Seccomp's
        // clone filter is what keeps the worker from starting processes.

        // 2. Namespaces: nothing the worker mounts, names or signals through IPC reaches
        // the host; with a new network namespace it sees only a down loopback.
        var flags = VOLT_CLONE_NEWNS | VOLT_CLONE_NEWIPC | VOLT_CLONE_NEWUTS
        report.namespaces = ["mnt", "ipc", "uts"]
        if plan.newNetworkNamespace { flags |= VOLT_CLONE_NEWNET; report.namespaces.append("net") }
        let uid = getuid(), gid = getgid()
        var r = volt_unshare(flags)
        if r == -EPERM {
            // Unprivileged: a user namespace first, with ourselves mapped to ourselves.
            r = volt_unshare(flags | VOLT_CLONE_NEWUSER)
            if r < 0 { throw .namespaces("unshare(user+mnt+ipc+uts\(plan.newNetworkNamespace ? "+net" : ""))", errno: -r) }
            let m = volt_map_self(uid, gid)
            if m < 0 { throw .namespaces("uid/gid map of the new user namespace", errno: -m) }
            report.namespaces.insert("user", at: 0)
        } else if r < 0 {
            throw .namespaces("unshare(mnt+ipc+uts\(plan.newNetworkNamespace ? "+net" : ""))", errno: -r)
        }

        // 3. An empty, read-only tmpfs as the root directory; the host's tree is detached.
        var root: CInt
        if let dir = plan.rootDirectory {
            root = volt_enter_directory_root(dir)
        } else {
            root = volt_enter_empty_root("/tmp")
            if root == -ENOENT || root == -ENOTDIR { root = volt_enter_empty_root("/") }
        }
        if root < 0 { throw .root(errno: -root) }
        report.root = root == 0 ? "pivot_root" : "chroot"
        StartupTrace.mark("jail: namespaces, empty root")

        // 4. No core dumps, no ptrace attach by other processes of the same uid.
        r = volt_set_not_dumpable()
        if r < 0 { throw .capabilities("prctl(PR_SET_DUMPABLE, 0)", errno: -r) }

        // 5. no_new_privs (required by unprivileged Landlock and seccomp), then no capabilities.
        r = volt_set_no_new_privs()
        if r < 0 { throw .noNewPrivs(errno: -r) }
        try Capabilities.dropAll()
        StartupTrace.mark("jail: no_new_privs, capabilities dropped")

        // 6. Landlock: every filesystem, network and scope right the kernel knows, no rule.
        report.landlockABI = try Landlock.restrictEverything()
        StartupTrace.mark("jail: Landlock")

        // 7. Seccomp, last: the steps above use calls the allowlist does not have.
        try Seccomp.load(plan.seccomp, mode: plan.seccompMode)
        report.allowedSyscalls = Seccomp.allowedSyscallCount(plan.seccomp)
        report.seccompMode = plan.seccompMode
        return report
    }

    private static func limit(_ name: String, _ resource: CInt, _ value: UInt64) throws(SandboxError) {
        let r = volt_set_rlimit(resource, value, value)
        if r < 0 { throw .rlimit("\(name)=\(value == UInt64.max ? "unlimited" : String(value))", errno: -r) }
    }

    /// Distinct system calls `rules` allows (the figure docs/security.md reports).
    public static func allowedSyscallCount(_ rules: [SeccompRule]) -> Int { Seccomp.allowedSyscallCount(rules) }
}
