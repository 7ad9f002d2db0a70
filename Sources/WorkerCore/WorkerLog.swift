import Glibc

/// Diagnostics on stderr, one unbuffered line each, prefixed with the worker's name
/// ("volt-blk-worker: ..."). Unbuffered: a worker may `_exit` (crash faults) or be
/// killed, and its last words must not sit in a stdio buffer.
public enum WorkerLog {
    /// Set once by `WorkerMain` before any thread starts.
    nonisolated(unsafe) public static var program = "volt-worker"

    public static func line(_ text: String) {
        let line = program + ": " + text + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
