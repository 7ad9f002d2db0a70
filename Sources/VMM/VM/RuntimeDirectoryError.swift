import Glibc
import SystemPackage

/// The VM's runtime directory (`RuntimeDirectory`) cannot be made, or its id is taken.
public enum RuntimeDirectoryError: Error, Equatable, CustomStringConvertible {
    case baseUncreatable(String, Errno)
    case uncreatable(String, Errno)
    case alreadyRunning(id: VMID, pid: pid_t)
    case pidFileUnwritable(directory: String, Errno)

    public var description: String {
        switch self {
        case let .baseUncreatable(base, errno):
            return "\(base): cannot create the runtime directory: \(errno) — run as root or set VOLT_RUNTIME_DIR"
        case let .uncreatable(path, errno):
            return "\(path): cannot create: \(errno)"
        case let .alreadyRunning(id, pid):
            return "--id \(id): a VM with this id is already running (pid \(pid)) — pick another id"
        case let .pidFileUnwritable(directory, errno):
            return "\(directory)/pid: cannot write: \(errno)"
        }
    }
}
