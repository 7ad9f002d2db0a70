/// Everything that stops volt-net-worker from starting or serving. Guest mistakes are
/// never errors of this kind: they drop one packet and are counted in `Metrics`.
enum NetWorkerError: Error, CustomStringConvertible {
    /// A bad command line: what is wrong, and how to fix it.
    case usage(String, fix: String)
    /// A TAP could not be opened or configured.
    case tap(String, errno: Int32, fix: String)
    /// A system call the worker needs failed.
    case system(String, errno: Int32)
    /// The front-end set up a queue the worker cannot use.
    case badQueue(Int, String)

    var description: String {
        switch self {
        case let .usage(what, fix): return "\(what) (fix: \(fix))"
        case let .tap(what, e, fix): return "\(what): \(errnoText(e)) (fix: \(fix))"
        case let .system(what, e): return "\(what): \(errnoText(e))"
        case let .badQueue(i, why): return "queue \(i): \(why)"
        }
    }
}

import Glibc

func errnoText(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(cString: s) + " (errno \(e))"
}
