import Sandbox
import WorkerCore

// The system calls volt-rng-worker makes once its socket is connected: Sandbox's
// BasePolicy (Swift runtime, threads, vhost-user on the given socket) and WorkerCore's
// WorkerPolicy (queue-thread event loop) — nothing else. Its entropy comes from
// getrandom(2), already in the base for Swift's hashing seed; it holds no file, opens
// none, and writes none.

enum SeccompPolicy {
    /// What the device adds: nothing.
    static let entropy: [SeccompRule] = []

    static var device: DeviceSandbox { DeviceSandbox(seccomp: entropy, heldFDs: 0, maxFileSize: 0) }

    /// The whole allowlist for this worker.
    static func rules(socket: CInt) -> [SeccompRule] {
        WorkerPolicy.rules(socket: socket, device: device)
    }
}
