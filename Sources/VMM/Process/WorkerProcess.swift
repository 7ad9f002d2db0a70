import CShim
import Glibc
import IPC
import SystemPackage

/// A device worker volt-vmm started: its pid and pidfd (for supervision), and our end of
/// the vhost-user socketpair. The child gets the other end as fd 3 and the fds in
/// `passing` as 4, 5, ...; every other fd is closed in the child.
final class WorkerProcess: @unchecked Sendable {
    /// "blk worker for disk0" — how logs and errors name it.
    let name: String
    let pid: pid_t
    let pidFD: Int32
    private var reaped: Subprocess.Termination?

    static let socketFD: CInt = InheritedFDs.socket

    /// The worker executables live next to volt-vmm.
    static func executable(_ name: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw ProcessError.ownPathUnknown }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let path = "\(dir)/\(name)"
        guard access(path, X_OK) == 0 else {
            throw ProcessError.workerExecutableMissing(path: path)
        }
        return path
    }

    /// Spawns the worker; `arguments` should refer to fd 3 (socket) and 4... (`passing`).
    static func spawn(name: String, executable: String, arguments: [String], passing: [Int32]) throws -> (WorkerProcess, Connection) {
        try start(name: name, passing: passing) { fds in
            let dup2 = fds.enumerated().map { (fd: $0.element, to: socketFD + CInt($0.offset)) }
            return try Subprocess.spawn(executable, arguments: arguments,
                                        fileActions: .init(dup2: dup2, closeFrom: socketFD + CInt(fds.count)))
        }
    }

    /// Makes the socketpair and has `launch` start the worker with the fds it must get as
    /// 3, 4, ... (our socketpair's other end, then `passing`); `launch` returns its pid.
    static func start(name: String, passing: [Int32], launch: ([CInt]) throws -> pid_t) throws -> (WorkerProcess, Connection) {
        let (ours, theirs) = try Connection.pair()
        let pid = try withExtendedLifetime(theirs) { try launch([theirs.socket.rawValue] + passing) }
        let pidFD = volt_pidfd_open(pid)
        guard pidFD >= 0 else {
            // No kill(2) here (seccomp): hanging up makes the worker exit, then it is reaped.
            ours.shutdown()
            _ = try? Subprocess.wait(pid)
            throw ProcessError.pidfdOpenFailed(pid: pid, worker: name, Errno(rawValue: -pidFD))
        }
        return (WorkerProcess(name: name, pid: pid, pidFD: pidFD), ours)
    }

    private init(name: String, pid: pid_t, pidFD: Int32) {
        self.name = name
        self.pid = pid
        self.pidFD = pidFD
    }

    deinit { close(pidFD) }

    /// Waits up to `milliseconds` for the worker to exit, reaping it; nil if still running.
    func waitForExit(milliseconds: Int32) -> Subprocess.Termination? {
        if let reaped { return reaped }
        var p = pollfd(fd: pidFD, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0 else { return nil }
        reaped = try? Subprocess.wait(pid)
        return reaped
    }

    /// Signals this worker through its pidfd: volt-vmm's seccomp filters allow no kill(2),
    /// so no other process can be signalled, and a recycled pid is never hit.
    func signal(_ sig: Int32) {
        _ = volt_pidfd_send_signal(pidFD, sig)
    }

    /// SIGTERM, a short grace period, then SIGKILL; always reaps.
    func stop() {
        guard waitForExit(milliseconds: 0) == nil else { return }
        signal(SIGTERM)
        if waitForExit(milliseconds: 1000) == nil {
            signal(SIGKILL)
            _ = waitForExit(milliseconds: -1)
        }
    }

    /// How the worker ended, in words an operator can act on.
    static func describe(_ termination: Subprocess.Termination) -> String {
        switch termination {
        case let .exited(code): return "exited with status \(code)"
        case .signaled(SIGSYS): return "killed: seccomp violation (SIGSYS)"
        case let .signaled(sig): return "killed by signal \(sig) (\(String(cString: strsignal(sig))))"
        }
    }
}
