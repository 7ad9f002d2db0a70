import CShim
import Glibc
import IPC
import Sandbox
import Synchronization

/// `--restart`: what happens when a spawned device worker dies.
public enum RestartMode: String, CaseIterable, Sendable {
    /// Respawn it and replay the device state; the guest keeps running.
    case on
    /// Fail-stop: the VM ends with exit 1, naming the worker.
    case never
}

/// How often and how fast a worker is restarted.
public struct RestartPolicy: Equatable {
    public var mode: RestartMode
    /// At most this many restarts of one worker within `windowNanoseconds`.
    public var maxRestarts: Int
    public var windowNanoseconds: UInt64
    /// Delay before the first restart in a window; doubles per restart, capped.
    public var initialBackoffMilliseconds: UInt64
    public var maxBackoffMilliseconds: UInt64

    public init(mode: RestartMode = .on, maxRestarts: Int = 5, windowNanoseconds: UInt64 = 60_000_000_000,
                initialBackoffMilliseconds: UInt64 = 10, maxBackoffMilliseconds: UInt64 = 1000) {
        self.mode = mode
        self.maxRestarts = maxRestarts
        self.windowNanoseconds = windowNanoseconds
        self.initialBackoffMilliseconds = initialBackoffMilliseconds
        self.maxBackoffMilliseconds = maxBackoffMilliseconds
    }
}

/// Restarts of one worker within the sliding window.
struct RestartBudget {
    let policy: RestartPolicy
    private(set) var recent: [UInt64] = []

    init(policy: RestartPolicy) { self.policy = policy }

    /// Records a restart at `now` and returns the backoff to wait first, or nil when the
    /// budget for the window is spent.
    mutating func admit(now: UInt64) -> UInt64? {
        recent.removeAll { now &- $0 >= policy.windowNanoseconds }
        guard recent.count < policy.maxRestarts else { return nil }
        let shift = UInt64(min(recent.count, 20))
        recent.append(now)
        return min(policy.initialBackoffMilliseconds << shift, policy.maxBackoffMilliseconds)
    }
}

/// A worker volt-vmm spawned and can spawn again: the executable, arguments and fds it
/// was started with (the VMM keeps those fds open for the VM's lifetime), and the
/// process currently serving the device.
final class SupervisedWorker: @unchecked Sendable {
    // @unchecked: `current` is behind a Mutex; the rest is immutable.
    let name: String
    let executable: String
    let arguments: [String]
    /// Image or TAP fds handed to every incarnation as fds 4, 5, ...
    let passing: [Int32]
    private let current: Mutex<WorkerProcess>
    /// Incarnations started after the first (reported in `--metrics`).
    let restarts = Atomic<UInt64>(0)

    private init(name: String, executable: String, arguments: [String], passing: [Int32], process: WorkerProcess) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.passing = passing
        current = Mutex(process)
    }

    static func spawn(name: String, executable: String, arguments: [String], passing: [Int32]) throws -> (SupervisedWorker, Connection) {
        let (process, connection) = try WorkerProcess.spawn(name: name, executable: executable, arguments: arguments, passing: passing)
        return (SupervisedWorker(name: name, executable: executable, arguments: arguments, passing: passing, process: process), connection)
    }

    var process: WorkerProcess { current.withLock { $0 } }

    /// The launcher command that restarts this worker, once volt-vmm has locked itself
    /// down (it can then no longer exec anything itself).
    private let launcher = Mutex<(launcher: Launcher, command: Int)?>(nil)

    var launchCommand: Launcher.Command {
        Launcher.Command(executable: executable, arguments: arguments, fdCount: 1 + passing.count)
    }

    func restartThrough(_ launcher: Launcher, command: Int) {
        self.launcher.withLock { $0 = (launcher, command) }
    }

    /// Starts a new incarnation with the same arguments and fds; the caller has reaped
    /// the old one. Returns our end of the new socketpair.
    func respawn() throws -> Connection {
        let process: WorkerProcess, connection: Connection
        if let (launcher, command) = launcher.withLock({ $0 }) {
            (process, connection) = try WorkerProcess.start(name: name, passing: passing) { try launcher.run(command, passing: $0) }
        } else {
            (process, connection) = try WorkerProcess.spawn(name: name, executable: executable, arguments: arguments, passing: passing)
        }
        current.withLock { $0 = process }
        restarts.add(1, ordering: .relaxed)
        return connection
    }

    func stop() { process.stop() }

    /// How incarnation `pid` ended; for a seccomp kill also the system call, when the kernel's
    /// audit log (/dev/kmsg, read by the launcher once volt-vmm is locked down) names it.
    func describe(_ end: Subprocess.Termination, pid: pid_t) -> String {
        let text = WorkerProcess.describe(end)
        guard end == .signaled(SIGSYS) else { return text }
        for _ in 0..<5 {   // the audit record is printed by kauditd, shortly after the kill
            let via = launcher.withLock { $0?.launcher }
            let number = via.map { $0.seccompSyscall(of: pid) ?? -1 } ?? volt_seccomp_syscall_of(pid)
            if number >= 0 { return "\(text), system call \(number) (\(Sandbox.syscallName(number) ?? "unknown"))" }
            usleep(20_000)
        }
        return text
    }
}
