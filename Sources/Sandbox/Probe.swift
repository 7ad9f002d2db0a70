import Glibc

/// Test-only probes, reachable only through the hidden --fault-forbidden-syscall and
/// --probe-sandbox flags (workers) and --probe-lockdown (volt-vmm).
public enum SandboxProbe {
    /// Extra rules for --probe-sandbox only: let path calls reach the kernel, so the test
    /// sees what Landlock and the empty root answer on their own.
    public static let pathRules: [SeccompRule] = [
        SeccompRule("openat", why: "TEST ONLY (--probe-sandbox): Landlock and the empty root must refuse"),
        SeccompRule("mkdir", why: "TEST ONLY (--probe-sandbox): Landlock and the empty root must refuse"),
    ]

    /// A call no worker filter allows: the process dies with SIGSYS here.
    public static func forbiddenSyscall() -> Never {
        fflush(nil)
        _ = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        // Only reached without a filter (--no-sandbox or --seccomp=log).
        _exit(70)
    }

    /// Prints `probe: WHAT -> RESULT` lines on stderr (write(2) only), then dies in socket().
    public static func run() -> Never {
        tryPaths()
        let line = "probe: socket AF_INET -> (expect SIGSYS)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        forbiddenSyscall()
    }

    /// One `probe: WHAT -> ok` or `probe: WHAT -> errno N NAME` line on stderr; closes an fd result.
    public static func report(_ what: String, _ r: Int32, _ err: Int32, isFD: Bool = true) {
        let result = r >= 0 ? "ok" : "errno \(err) \(name(err))"
        let line = "probe: \(what) -> \(result)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        if r >= 0 && isFD { close(r) }
    }

    /// Tries to read, list and create files, reporting each result.
    public static func tryPaths() {
        var fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC); report("open /etc/passwd", fd, errno)
        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC); report("open / (read dir)", fd, errno)
        fd = open("/volt-probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600); report("create /volt-probe", fd, errno)
        let m = mkdir("/volt-probe-dir", 0o700); report("mkdir /volt-probe-dir", m, errno, isFD: false)
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC); report("open /proc/self/status", fd, errno)
    }

    static func name(_ e: Int32) -> String {
        switch e {
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EROFS: return "EROFS"
        default: return "E?"
        }
    }
}
