import IPC
import VirtioCore

/// Everything the test frontend can fail on. Backend misbehaviour the tests look for
/// (an unknown used id, no completion in time) is a case here, never a crash.
public enum TestFrontendError: Error, Equatable, CustomStringConvertible {
    /// A vhost-user request failed or the back-end's reply was malformed.
    case vhostUser(VhostUserError)
    /// Guest memory could not be created or a guest access was out of range.
    case memory(MemoryMapError)
    /// A system call failed (eventfd, poll, posix_spawn...).
    case system(operation: String, errno: CInt)
    /// The back-end cannot do what the test asked for (queues, features).
    case unsupported(String)
    /// A caller-side misuse (queue index, empty chain, exhausted ring or memory).
    case invalidArgument(String)
    /// No used entry arrived in time.
    case timedOut(queue: Int, waitedFor: Int, got: Int)
    /// The device put an id in the used ring that is not an in-flight head.
    case unknownUsedHead(queue: Int, id: UInt32)
    /// A device reply does not have the shape its spec requires.
    case malformedReply(String)

    public var description: String {
        switch self {
        case let .vhostUser(e): return "vhost-user: \(e)"
        case let .memory(e): return "guest memory: \(e)"
        case let .system(op, e): return "\(op) failed: errno \(e)"
        case let .unsupported(why): return "unsupported: \(why)"
        case let .invalidArgument(why): return "invalid argument: \(why)"
        case let .timedOut(q, want, got): return "queue \(q): \(got) of \(want) used entries before the timeout"
        case let .unknownUsedHead(q, id): return "queue \(q): device used id \(id), which is not an in-flight head"
        case let .malformedReply(why): return "malformed device reply: \(why)"
        }
    }
}
