import CShim
import Glibc

/// The seccomp rules every volt worker needs once sandboxed, whatever its device: the
/// Swift runtime and glibc (memory, locks, exit), its own threads, and the vhost-user
/// transport on the one socket it was given. A worker's SeccompPolicy.swift adds its
/// device's calls to these; nothing here opens a path, creates a socket or starts a process.
public enum BasePolicy {
    /// Swift runtime and glibc.
    public static func runtime(pid: pid_t) -> [SeccompRule] {
        let protExec = UInt64(PROT_EXEC)
        return [
            SeccompRule("read", why: "eventfd counters (kicks, stop/wake) and TAP/socket data"),
            SeccompRule("write", why: "eventfd signals (call, wake, stop) and stderr diagnostics"),
            SeccompRule("close", why: "fds replaced by SET_VRING_* and dropped memory tables"),
            SeccompRule("mmap", Arg(2).hasNone(protExec),
                        why: "allocator, thread stacks, guest memory regions (MAP_SHARED); never executable"),
            SeccompRule("mprotect", Arg(2).hasNone(protExec), why: "thread stack guard pages; never executable"),
            SeccompRule("munmap", why: "allocator, old memory tables"),
            SeccompRule("mremap", why: "allocator (realloc of large blocks)"),
            SeccompRule("madvise", why: "allocator returning memory (MADV_DONTNEED)"),
            SeccompRule("brk", why: "allocator"),
            SeccompRule("futex", why: "mutexes, condition variables, pthread_join"),
            SeccompRule("sched_yield", why: "Swift runtime and glibc lock back-off"),
            SeccompRule("getrandom", why: "Swift's per-process hashing seed, taken on first use"),
            SeccompRule("getpid", why: "abort() names its own process"),
            SeccompRule("gettid", why: "abort() and glibc locks name the calling thread"),
            SeccompRule("tgkill", Arg(0) == UInt64(UInt32(bitPattern: pid)),
                        why: "abort()/fatalError raise SIGABRT on this process only (a clean crash report)"),
            // glibc's fstat is newfstatat(fd, "", buf, AT_EMPTY_PATH); any path would resolve
            // in the empty root only.
            SeccompRule("newfstatat", Arg(3) == UInt64(0x1000 /* AT_EMPTY_PATH */),
                        why: "fstat of memory-region fds (SET_MEM_TABLE sizes)"),
            SeccompRule("rt_sigprocmask", why: "termination signals stay blocked outside the signal thread"),
            SeccompRule("restart_syscall", why: "the kernel resumes an interrupted poll/futex wait after SIGSTOP/SIGCONT (a frozen cgroup, a debugger)"),
            // glibc's malloc reads /proc/sys/vm/overcommit_memory the first time it shrinks a
            // thread's heap. Refused (Landlock would refuse it too), it assumes the default;
            // any other open still kills.
            SeccompRule("openat", Arg(2) == UInt64(O_RDONLY | O_CLOEXEC), failing: EACCES,
                        why: "glibc malloc's one read-only open of /proc/sys/vm/overcommit_memory: refused, not killed"),
            SeccompRule("rt_sigtimedwait", why: "the signal thread's sigwait for SIGTERM/SIGINT/SIGHUP/SIGQUIT"),
            SeccompRule("exit", why: "a thread ends"),
            SeccompRule("exit_group", why: "clean exit on SIGTERM or front-end disconnect"),
        ]
    }

    /// The worker's own threads (queue threads, signal thread), never processes.
    public static var threads: [SeccompRule] {
        // pthread_create's flags; a clone without any of them is a fork and is killed.
        let threadFlags = UInt64(VOLT_CLONE_THREAD) | 0x100 /* CLONE_VM */ | 0x200 /* CLONE_FS */
            | 0x400 /* CLONE_FILES */ | 0x800 /* CLONE_SIGHAND */
        return [
            SeccompRule("clone", Arg(0).hasAll(threadFlags), why: "pthread_create: threads sharing memory and fds only"),
            // clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc
            // fall back to clone above.
            SeccompRule("clone3", failing: ENOSYS, why: "flags unreadable by seccomp; glibc falls back to clone"),
            SeccompRule("set_robust_list", why: "every new thread (glibc)"),
            SeccompRule("rseq", why: "every new thread (glibc registers restartable sequences)"),
            // glibc's first pthread_create installs handlers for its internal SIGCANCEL (32)
            // and SIGSETXID (33); no other handler can be changed.
            SeccompRule("rt_sigaction", Arg(0) == UInt64(32), why: "glibc's first pthread_create: SIGCANCEL handler"),
            SeccompRule("rt_sigaction", Arg(0) == UInt64(33), why: "glibc's first pthread_create: SIGSETXID handler"),
            SeccompRule("prctl", Arg(0) == Int32(VOLT_PR_SET_NAME), why: "a thread names itself (visible in /proc)"),
        ]
    }

    /// The vhost-user connection: messages and fds only on `socket`, fds kept close-on-exec.
    public static func vhostUser(socket: CInt) -> [SeccompRule] {
        let fd = UInt64(UInt32(bitPattern: socket))
        return [
            SeccompRule("recvmsg", Arg(0) == fd, why: "vhost-user requests with SCM_RIGHTS fds, on the given socket only"),
            SeccompRule("sendmsg", Arg(0) == fd, why: "vhost-user replies, on the given socket only"),
            SeccompRule("fcntl", Arg(1) == F_DUPFD_CLOEXEC, why: "OwnedFD duplicates (close-on-exec)"),
            SeccompRule("fcntl", Arg(1) == F_GETFD, why: "marking inherited fds close-on-exec"),
            SeccompRule("fcntl", Arg(1) == F_SETFD, why: "marking inherited fds close-on-exec"),
            SeccompRule("fcntl", Arg(1) == F_GETFL, why: "kick eventfds made non-blocking"),
            SeccompRule("fcntl", Arg(1) == F_SETFL, why: "kick eventfds made non-blocking"),
        ]
    }

    /// Calls no worker policy may allow: paths, sockets, processes, namespaces, signals to
    /// others (checked by each worker's SeccompPolicyTests; a rule may make one fail).
    public static let neverAllowed: Set<String> = [
        "open", "openat", "openat2", "socket", "socketpair", "connect", "bind", "accept4", "execve", "execveat",
        "fork", "vfork", "ptrace", "mount", "unshare", "setns", "kill", "chroot", "pivot_root", "bpf",
    ]

    /// runtime + threads + vhost-user.
    public static func base(socket: CInt, pid: pid_t = getpid()) -> [SeccompRule] {
        runtime(pid: pid) + threads + vhostUser(socket: socket)
    }
}
