import CShim
import Glibc
import IPC

/// qemu-storage-daemon exporting one file as a vhost-user-blk back-end: a peer we did
/// not write, to prove the test frontend (and our IPC layer) speak the real protocol.
///
/// Its output goes to `logPath`. `stop()` (or deinit) hangs up the client first (the
/// daemon does not act on SIGTERM while a client is connected), then SIGTERM, then
/// SIGKILL after 5 s.
public final class QemuStorageDaemon {
    /// The daemon's path on $PATH (package qemu-system-common on Debian), or nil.
    public static var executable: String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/qemu-storage-daemon"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public let socketPath: String
    public let logPath: String
    private var pid: pid_t?
    private var clients: [Connection] = []

    /// Starts the daemon on `image` and waits up to `timeout` seconds for it to listen.
    /// `direct` opens the image with O_DIRECT (`cache.direct=on`), bypassing the host page cache.
    public init(image: String, socketPath: String, logPath: String, writable: Bool = true,
                numQueues: Int = 1, direct: Bool = false, timeout: Double = 10) throws(TestFrontendError) {
        guard let executable = Self.executable else { throw .unsupported("qemu-storage-daemon is not on PATH") }
        self.socketPath = socketPath
        self.logPath = logPath
        pid = try Self.spawn(executable, [
            "--blockdev", "driver=file,node-name=f0,filename=\(image)" + (direct ? ",cache.direct=on" : ""),
            "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=\(socketPath)"
                + ",writable=\(writable ? "on" : "off"),num-queues=\(numQueues)",
        ], log: logPath)
        let deadline = volt_monotonic_ns() &+ UInt64(timeout * 1e9)
        var st = stat()
        while stat(socketPath, &st) != 0 || st.st_mode & S_IFMT != S_IFSOCK {
            guard isRunning, volt_monotonic_ns() < deadline else {
                stop()
                throw .unsupported("qemu-storage-daemon did not create \(socketPath); see \(logPath)")
            }
            usleep(20_000)
        }
    }

    /// Connects a client (retrying while the daemon is between bind and listen). The
    /// daemon serves one client at a time.
    public func connect(timeout: Double = 5) throws(TestFrontendError) -> Connection {
        let deadline = volt_monotonic_ns() &+ UInt64(timeout * 1e9)
        while true {
            do {
                let connection = try Connection.connect(path: socketPath)
                clients.append(connection)
                return connection
            } catch {
                guard case .system(_, ECONNREFUSED) = error, volt_monotonic_ns() < deadline else { throw .vhostUser(error) }
                usleep(20_000)
            }
        }
    }

    /// A test frontend connected to the daemon (not started).
    public func frontend(options: TestFrontendOptions = TestFrontendOptions()) throws(TestFrontendError) -> VhostUserTestFrontend {
        try VhostUserTestFrontend(connection: try connect(), options: options)
    }

    public var isRunning: Bool {
        guard let pid else { return false }
        var status: CInt = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { self.pid = nil; return false }
        return true
    }

    public func stop() {
        for c in clients { c.shutdown() }
        clients.removeAll()
        guard let pid, isRunning else { return }
        kill(pid, SIGTERM)
        for _ in 0..<250 where isRunning { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: CInt = 0
            _ = waitpid(pid, &status, 0)
        }
        self.pid = nil
    }

    deinit { stop() }

    /// posix_spawn with stdin from /dev/null, stdout+stderr appended to `log`, an empty
    /// signal mask and default signal actions (the test runner's blocked or ignored
    /// signals would otherwise be inherited, and SIGTERM would not stop the daemon).
    private static func spawn(_ path: String, _ arguments: [String], log: String) throws(TestFrontendError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard r == 0 else { throw .system(operation: "posix_spawn(\(path))", errno: r) }
        return pid
    }
}
