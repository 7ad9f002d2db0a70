import Glibc
import Sandbox
import WorkerCore

// The system calls volt-vsock-worker makes once its listening socket is open and its
// vhost-user socket connected: Sandbox's BasePolicy (Swift runtime, threads, vhost-user
// on the given socket), WorkerCore's WorkerPolicy (the queue thread's poll), and the
// vsock set below. Unlike the other workers it must make sockets after the sandbox —
// accepting host peers and connecting to `<uds_path>_P` for the guest — so socket,
// connect and accept4 are allowed here, each as narrowly as a filter can say it. Where
// connect can reach is the jail's business: the root is a read-only bind of uds_path's
// directory and nothing else (docs/security.md, "volt-vsock-worker").

enum SeccompPolicy {
    static let sockStream = UInt64(SOCK_STREAM.rawValue) | UInt64(SOCK_NONBLOCK.rawValue) | UInt64(SOCK_CLOEXEC.rawValue)
    static let acceptFlags = UInt64(SOCK_NONBLOCK.rawValue) | UInt64(SOCK_CLOEXEC.rawValue)

    /// The vsock data path on the listening socket `listenFD`.
    static func vsock(listenFD: CInt) -> [SeccompRule] {
        [
            SeccompRule("accept4", Arg(0) == UInt64(UInt32(bitPattern: listenFD)), Arg(3) == acceptFlags,
                        why: "host peers connecting to uds_path, on the listening socket only, non-blocking and close-on-exec"),
            SeccompRule("socket", Arg(0) == UInt64(AF_UNIX), Arg(1) == sockStream, Arg(2) == UInt64(0),
                        why: "a guest connecting to the host: one AF_UNIX stream socket per connection, no other family"),
            // The address is in memory a filter cannot read. The jail's root holds only
            // uds_path's directory (read-only), and the new network namespace has no
            // abstract sockets of the host's: only sockets in that directory answer.
            SeccompRule("connect", why: "a guest connecting to CID 2 port P reaches <uds_path>_P"),
            SeccompRule("shutdown", Arg(1) == UInt64(SHUT_WR),
                        why: "the guest sent SHUTDOWN(SEND): the host peer reads end-of-file"),
            // Not fd-filtered, like read/write in the base: host socket fds come and go.
            SeccompRule("readv", why: "host socket data straight into the guest's RX buffers"),
            SeccompRule("writev", why: "guest TX payload straight to the host socket"),
        ]
    }

    /// fds held besides the framework's: the listener, every connection and host peer
    /// waiting for its CONNECT line, and one being made.
    static let heldFDs = 1 + VsockQueueHandler.maxConnections + VsockQueueHandler.maxPendingHostConnections + 1

    static func device(listenFD: CInt, rootDirectory: String?) -> DeviceSandbox {
        DeviceSandbox(seccomp: vsock(listenFD: listenFD), heldFDs: heldFDs, maxFileSize: 0, rootDirectory: rootDirectory)
    }

    /// The whole allowlist for this worker.
    static func rules(socket: CInt, listenFD: CInt) -> [SeccompRule] {
        WorkerPolicy.rules(socket: socket, device: device(listenFD: listenFD, rootDirectory: nil))
    }
}
