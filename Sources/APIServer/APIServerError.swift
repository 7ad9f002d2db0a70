import SystemPackage

/// Everything the API socket layer can fail with; each message names the fix.
/// Hostile client input is never an error here: it ends that client's connection only.
public enum APIServerError: Error, Equatable, CustomStringConvertible {
    /// Something accepts connections at the path: another VMM (or another API server) is
    /// running there.
    case socketInUse(path: String)
    /// The path exists and is not a socket (a file, directory, ...), so it is not ours to replace.
    case notASocket(path: String)
    /// sockaddr_un holds at most 107 bytes of path.
    case pathTooLong(path: String)
    /// The fd handed to `APIServer(listeningFD:)` is not a listening stream socket.
    case notAListeningSocket(fd: CInt)
    /// A system call failed (`operation` names it and its object).
    case system(operation: String, errno: Errno)
    /// HTTPClient: method or path with a space, CR or LF (would not be one request line).
    case invalidRequest(String)
    /// HTTPClient: no complete answer within the timeout.
    case timedOut(path: String)
    /// HTTPClient: the server's bytes are not an HTTP response, or it closed early.
    case malformedResponse(String)

    public var description: String {
        switch self {
        case let .socketInUse(path):
            return "API socket \(path) is in use: another process accepts connections there. "
                + "Stop that process, or pass a different --api-sock path."
        case let .notASocket(path):
            return "API socket path \(path) exists and is not a socket. "
                + "Remove it, or pass a different --api-sock path."
        case let .pathTooLong(path):
            return "API socket path \(path) is \(path.utf8.count) bytes; a Unix socket path "
                + "holds at most \(UnixSocket.maxPathBytes). Use a shorter path."
        case let .notAListeningSocket(fd):
            return "fd \(fd) is not a listening Unix stream socket; pass a socket after listen(2)."
        case let .system(operation, errno):
            return "\(operation) failed: \(errno) (errno \(errno.rawValue))"
        case let .invalidRequest(what):
            return "invalid request: \(what)"
        case let .timedOut(path):
            return "no answer from the API socket \(path) in time: is the VMM stuck, "
                + "or is this the right socket?"
        case let .malformedResponse(what):
            return "the API socket did not answer with HTTP: \(what)"
        }
    }
}
