import Glibc

/// What stops a worker from starting or serving (never guest mistakes: those end one
/// request or packet and are counted).
public enum WorkerError: Error, CustomStringConvertible, Equatable {
    /// A bad command line: what is wrong, and how to fix it.
    case usage(String)
    /// A system call the worker needs failed.
    case system(String, errno: Int32)
    /// A device resource (image, TAP, ...) could not be set up; the message names the fix.
    case device(String)

    public var description: String {
        switch self {
        case let .usage(what), let .device(what): return what
        case let .system(what, e): return "\(what): \(errnoText(e))"
        }
    }
}

/// "No such file or directory (errno 2)".
public func errnoText(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(cString: s) + " (errno \(e))"
}

/// An error that decides the worker's exit status (2: bad command line or host
/// resource the caller named; 1: anything else). Errors without it exit 1.
public protocol WorkerFailure: Error {
    var exitStatus: Int32 { get }
}

extension WorkerError: WorkerFailure {
    public var exitStatus: Int32 { if case .usage = self { return 2 }; return 1 }
}
