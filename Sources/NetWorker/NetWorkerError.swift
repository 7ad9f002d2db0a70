import WorkerCore

/// What stops volt-net-worker from starting or serving. Guest mistakes are never errors
/// of this kind: they drop one packet and are counted.
enum NetWorkerError: Error, CustomStringConvertible, WorkerFailure {
    /// A bad command line or TAP argument: what is wrong, and how to fix it.
    case usage(String, fix: String)
    /// A TAP could not be opened or configured.
    case tap(String, errno: Int32, fix: String)
    /// A system call the worker needs failed.
    case system(String, errno: Int32)

    var description: String {
        switch self {
        case let .usage(what, fix): return "\(what) (fix: \(fix))"
        case let .tap(what, e, fix): return "\(what): \(errnoText(e)) (fix: \(fix))"
        case let .system(what, e): return "\(what): \(errnoText(e))"
        }
    }

    /// TAP problems are the caller's to fix, like a bad option: exit 2.
    var exitStatus: Int32 {
        if case .system = self { return 1 }
        return 2
    }
}
