// The system calls volt-blk-worker makes once its image is open and its socket is
// connected: the allowlist the sandbox issue will install (seccomp, default: kill).
// Built as common + vhost-user + device sets, one why-comment per rule. Not loaded
// yet: installing it (libseccomp, before any thread starts) comes with the sandbox.

struct SeccompRule: Equatable {
    let syscall: String
    /// Argument restrictions, in words (the sandbox turns them into arg filters).
    let only: String?
    let why: String

    init(_ syscall: String, only: String? = nil, _ why: String) {
        self.syscall = syscall; self.only = only; self.why = why
    }
}

enum SeccompPolicy {
    /// Any Swift worker: memory, threads, exit, output.
    static let common: [SeccompRule] = [
        SeccompRule("read", "eventfd counters (kick, stop) and the vhost-user socket"),
        SeccompRule("write", "eventfd signals (call, err, stop) and stderr diagnostics"),
        SeccompRule("close", "fds replaced by SET_VRING_* and dropped memory tables"),
        SeccompRule("poll", "queue threads wait on kick + stop eventfds"),
        SeccompRule("mmap", only: "no PROT_EXEC", "Swift allocator, thread stacks, guest memory regions"),
        SeccompRule("munmap", "allocator, old memory tables"),
        SeccompRule("mprotect", only: "no PROT_EXEC", "thread stack guard pages"),
        SeccompRule("madvise", "allocator"),
        SeccompRule("brk", "allocator"),
        SeccompRule("futex", "pthread_join, Swift runtime locks"),
        SeccompRule("clone3", only: "CLONE_THREAD", "queue threads (no new processes)"),
        SeccompRule("clone", only: "CLONE_THREAD", "queue threads on older glibc"),
        SeccompRule("set_robust_list", "new threads"),
        SeccompRule("rseq", "new threads (glibc)"),
        SeccompRule("prctl", only: "PR_SET_NAME", "naming queue threads"),
        SeccompRule("rt_sigprocmask", "termination signals blocked outside the signal thread"),
        SeccompRule("rt_sigtimedwait", "the signal thread's sigwait"),
        SeccompRule("exit", "queue threads end"),
        SeccompRule("exit_group", "clean exit on SIGTERM or front-end disconnect"),
        SeccompRule("fstat", "Swift runtime, memory-table fd sizes"),
        SeccompRule("newfstatat", "as fstat on newer glibc"),
    ]

    /// The vhost-user transport.
    static let vhostUser: [SeccompRule] = [
        SeccompRule("recvmsg", "messages with SCM_RIGHTS fds (memory regions, eventfds)"),
        SeccompRule("sendmsg", "replies"),
        SeccompRule("eventfd2", "each queue thread's stop eventfd"),
        SeccompRule("fcntl", only: "F_DUPFD_CLOEXEC, F_GETFL, F_SETFL", "fd duplication"),
    ]

    /// Block I/O on the already-open image (never opens files: no open/openat).
    static let block: [SeccompRule] = [
        SeccompRule("preadv", "IN: straight into guest memory"),
        SeccompRule("pwritev", "OUT: straight from guest memory"),
        SeccompRule("pread64", "bounce-buffer reads with --direct"),
        SeccompRule("pwrite64", "bounce-buffer and zero writes"),
        SeccompRule("fdatasync", "FLUSH, and writethrough completion"),
        SeccompRule("fallocate", only: "PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE|KEEP_SIZE", "DISCARD and WRITE_ZEROES"),
    ]

    static var all: [SeccompRule] { common + vhostUser + block }
}
