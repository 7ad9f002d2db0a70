import Glibc
import Sandbox

/// What a device needs of the sandbox, besides what every worker gets: its own
/// seccomp rules (its SeccompPolicy.swift), the fds it holds open (image, TAPs), and
/// whether it writes files.
public struct DeviceSandbox {
    public var seccomp: [SeccompRule]
    /// fds the device holds besides stdio, the socket and what the framework holds.
    public var heldFDs: Int
    /// RLIMIT_FSIZE: nil = unlimited (a disk image grows), 0 = the worker writes no file.
    public var maxFileSize: UInt64?
    /// The jail's root: nil = empty (every worker but vsock), else a read-only bind of
    /// this directory (`SandboxPlan.rootDirectory`).
    public var rootDirectory: String?

    public init(seccomp: [SeccompRule], heldFDs: Int, maxFileSize: UInt64?, rootDirectory: String? = nil) {
        self.seccomp = seccomp; self.heldFDs = heldFDs; self.maxFileSize = maxFileSize; self.rootDirectory = rootDirectory
    }
}

/// The framework's own system calls, on top of `BasePolicy` (runtime, threads,
/// vhost-user socket): the queue threads' event loop. The wake eventfds are made
/// before the sandbox, so eventfd2 is not here.
public enum WorkerPolicy {
    public static let queueThreads: [SeccompRule] = [
        SeccompRule("poll", why: "queue threads wait on kicks, their wake eventfd and device fds; also `--fault delay` sleeps"),
    ]

    /// The whole allowlist of a worker on `socket`.
    public static func rules(socket: CInt, device: DeviceSandbox) -> [SeccompRule] {
        BasePolicy.base(socket: socket) + queueThreads + device.seccomp
    }

    /// RLIMIT_FSIZE for `device`: its own limit, except that a worker whose stderr is a
    /// regular file (an operator's `2>vm.log`) may still log — 0 would kill it with
    /// SIGXFSZ at its first line — with room for 16 MiB more than the file holds now.
    public static func maxFileSize(device: DeviceSandbox, stderr: CInt = 2) -> UInt64? {
        guard let limit = device.maxFileSize else { return nil }
        var st = stat()
        guard fstat(stderr, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return limit }
        return max(limit, UInt64(max(st.st_size, 0)) + 16 << 20)
    }

    /// RLIMIT_NOFILE: stdio, the socket, the device's fds, two memory tables of 8
    /// regions (old and new during SET_MEM_TABLE), per thread a wake eventfd, per queue
    /// kick, call and err, and 16 spare (the inflight and metrics memfds among them).
    public static func maxOpenFiles(device: DeviceSandbox, threads: Int, queues: Int) -> UInt64 {
        UInt64(3 + 1 + device.heldFDs + 2 * 8 + threads + 3 * queues + 16)
    }
}
