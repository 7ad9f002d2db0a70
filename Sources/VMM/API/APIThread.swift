import APIServer
import CShim
import Glibc
import Logging
import Sandbox

/// The API: Firecracker's REST endpoints on a Unix socket, served by one thread for the
/// VM's whole life. The thread jails itself before its first request — no_new_privs,
/// Landlock without a single grant, no capabilities, its own seccomp filter (no open, no
/// socket, no exec) — so a hostile client reaches a thread that can touch no file, even
/// before the VM exists: everything needing a file is done by the main thread.
public final class APIThread: @unchecked Sendable {
    // @unchecked: immutable after init but for `socketRemovalHandedOver` (atomic enough: one
    // writer, the main thread, before the VM runs; read at exit on the same thread).
    public let socketPath: String
    private let server: APIServer
    private var socketRemovalHandedOver = false

    private init(server: APIServer, path: String) {
        self.server = server
        socketPath = path
    }

    /// Creates the socket (mode 0600; a live one at `socketPath` is refused, a stale one
    /// replaced) and starts the thread. `lockDown` false only with `--no-seccomp` and
    /// `--no-landlock` together (debugging).
    public static func start(socketPath: String, controller: VMController, maxPayload: Int, logger: Logger,
                             seccomp: SeccompMode? = .kill, landlock: Bool = true) throws -> APIThread {
        let server: APIServer
        do { server = try APIServer.listen(path: socketPath, limits: .init(maxPayload: maxPayload)) } catch {
            throw APIStartError.socket("\(error)")
        }
        let thread = APIThread(server: server, path: socketPath)
        let stop = volt_eventfd(0, VOLT_EFD_CLOEXEC)   // never signalled: the thread ends with the process
        // The thread's jail decides whether volt-vmm runs at all: a socket nobody serves
        // would hang every client.
        let jailed = Condition()
        nonisolated(unsafe) var failure: String??
        let report = { (problem: String?) in jailed.withLock { failure = .some(problem); jailed.broadcast() } }
        _ = try OSThread(name: "volt-api", prepare: {
            if landlock {
                do {
                    _ = try Sandbox.lockDownFileSystem(keeping: [])
                    try Sandbox.dropAllCapabilities()
                } catch {
                    report("the API thread cannot lock itself down: \(error)")
                    return false
                }
            }
            if let seccomp {
                do { try Sandbox.filterThisThread(VMMSeccompPolicy.api(listeningFD: server.listeningFD), mode: seccomp) } catch {
                    report("the API thread cannot install its seccomp filter: \(error)")
                    return false
                }
            }
            report(nil)
            return true
        }) {
            do {
                try server.run(handler: { request in
                    let answer = controller.route(method: request.method, path: request.path, body: request.body)
                    guard let body = answer.body else { return .noContent() }
                    return .json(answer.status, Array(body.utf8))
                }, stopFD: stop)
            } catch {
                logger.critical("the API stopped serving \(socketPath): \(error)")
            }
        }
        let problem = jailed.withLock { () -> String? in
            while failure == nil { jailed.wait() }
            return failure!
        }
        if let problem {
            server.remove()
            throw APIStartError.lockDown(problem)
        }
        return thread
    }

    /// From here on the launcher removes the socket file when volt-vmm ends (the VM's
    /// lock-down takes the right to remove it from volt-vmm itself).
    public func handOverSocketRemoval() { socketRemovalHandedOver = true }

    /// On the way out: removes the socket file unless the launcher will.
    public func removeSocketIfStillOurs() {
        if !socketRemovalHandedOver { server.remove() }
    }
}

public enum APIStartError: Error, CustomStringConvertible {
    case socket(String)
    case lockDown(String)
    public var description: String {
        switch self {
        case let .socket(why): return "API socket: \(why)"
        case let .lockDown(why): return "\(why); volt-vmm does not serve an API it cannot jail (--no-landlock / --no-seccomp turn the jail off, unsafely)"
        }
    }
}
