import Glibc
import SystemPackage

/// Starting a device worker, or the launcher that starts programs and removes files for a
/// locked-down volt-vmm, failed.
enum ProcessError: Error, Equatable, CustomStringConvertible {
    case ownPathUnknown
    case workerExecutableMissing(path: String)
    case pidfdOpenFailed(pid: pid_t, worker: String, Errno)
    case launcherForkFailed(Errno)
    case launcherStartFailed(what: String, Errno)
    case launcherRemoveFailed(what: String, Errno)

    var description: String {
        switch self {
        case .ownPathUnknown:
            return "cannot find volt-vmm's own path (/proc/self/exe)"
        case let .workerExecutableMissing(path):
            return "worker executable \(path) not found — build it (swift build) or install it next to volt-vmm"
        case let .pidfdOpenFailed(pid, worker, errno):
            return "pidfd_open(\(pid)) for \(worker): \(errno)"
        case let .launcherForkFailed(errno):
            return "cannot fork the launcher process: \(errno)"
        case let .launcherStartFailed(what, errno):
            return "launcher: cannot start \(what): \(errno)"
        case let .launcherRemoveFailed(what, errno):
            return "launcher: cannot remove \(what): \(errno)"
        }
    }
}
