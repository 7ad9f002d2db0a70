import CShim
import Glibc

/// Back-end side of the spec's "Backend program conventions": the back-end listens on
/// `--socket-path=PATH` (or is handed a connected socket with `--fd=N`) and the front-end
/// connects.
public final class Listener: Sendable {
    public let socket: OwnedFD
    public let path: String

    /// Binds and listens on `path`. A stale file at `path` is removed only if it is a
    /// socket; anything else makes this fail with EEXIST.
    public init(path: String, backlog: CInt = 1) throws(VhostUserError) {
        _ = try retryingOnInterrupt("remove stale socket \(path)") { volt_remove_stale_socket(path) }
        let fd = try retryingOnInterrupt("listen(\(path))") { volt_unix_listen(path, backlog) }
        socket = OwnedFD(taking: fd)
        self.path = path
    }

    /// Blocks until a front-end connects.
    public func accept() throws(VhostUserError) -> Connection {
        let fd = try retryingOnInterrupt("accept") { volt_unix_accept(socket.rawValue) }
        return Connection(adopting: OwnedFD(taking: fd))
    }
}

/// Where a back-end program gets its one vhost-user connection from.
public enum BackendEndpoint: Equatable, Sendable {
    case socketPath(String)
    case inheritedFd(CInt)

    /// Parses `--socket-path=PATH` / `--socket-path PATH` / `--fd=N` / `--fd N` (mutually
    /// exclusive, per the spec). Returns nil if neither is present; other arguments are ignored.
    public static func parse(_ arguments: [String]) throws(VhostUserError) -> BackendEndpoint? {
        var found: [BackendEndpoint] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            func value(_ option: String) throws(VhostUserError) -> String? {
                if arg.hasPrefix(option + "=") { return String(arg.dropFirst(option.count + 1)) }
                guard arg == option else { return nil }
                i += 1
                guard i < arguments.count else { throw .invalidArgument("\(option) needs a value") }
                return arguments[i]
            }
            if let path = try value("--socket-path") {
                guard !path.isEmpty else { throw .invalidArgument("empty --socket-path") }
                found.append(.socketPath(path))
            } else if let fd = try value("--fd") {
                guard let n = CInt(fd), n >= 0 else { throw .invalidArgument("--fd \(fd)") }
                found.append(.inheritedFd(n))
            }
            i += 1
        }
        guard found.count <= 1 else { throw .invalidArgument("--socket-path and --fd are incompatible") }
        return found.first
    }

    /// Accepts exactly one front-end connection (the listener is closed afterwards), or
    /// adopts the inherited fd.
    public func connect() throws(VhostUserError) -> Connection {
        switch self {
        case let .socketPath(path): return try Listener(path: path).accept()
        case let .inheritedFd(fd): return try Connection.adoptInherited(fd: fd)
        }
    }
}
