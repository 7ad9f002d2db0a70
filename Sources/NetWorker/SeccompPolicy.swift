import CShim
import Glibc
import Sandbox
import WorkerCore

// The system calls volt-net-worker makes once its TAP queues are open and its socket is
// connected: Sandbox's BasePolicy (Swift runtime, threads, vhost-user on the given
// socket) and WorkerCore's WorkerPolicy (queue-thread event loops), plus the net set below. Default action: kill the process (SIGSYS). Every
// rule says why; TAP ioctls are allowed only on the TAP fds. No open/openat, no socket,
// no process creation.

enum SeccompPolicy {
    /// Packets and TAP control on the already-open TAP queue fds.
    static func net(tapFDs: [CInt]) -> [SeccompRule] {
        var rules: [SeccompRule] = [
            // Not fd-filtered, like read/write in the base: on any fd the worker holds they
            // reach nothing read/write (allowed everywhere) could not. Unconditional rules
            // let the kernel's seccomp action cache skip the filter on every packet
            // (measured: the filter cost 3–5 % of packets/s when these were fd-filtered).
            SeccompRule("readv", why: "RX: a frame from the TAP straight into guest buffers"),
            SeccompRule("writev", why: "TX: a frame from guest buffers to the TAP"),
        ]
        for fd in tapFDs.map({ UInt64(UInt32(bitPattern: $0)) }) {
            rules += [
                SeccompRule("ioctl", Arg(0) == fd, Arg(1) == UInt64(volt_tunsetoffload_request),
                            why: "TUNSETOFFLOAD: the GUEST_* offloads the driver acked (SET_FEATURES)"),
                SeccompRule("ioctl", Arg(0) == fd, Arg(1) == UInt64(volt_tunsetqueue_request),
                            why: "TUNSETQUEUE: attach/detach a multiqueue TAP queue as pairs start and stop"),
            ]
        }
        return rules
    }

    /// The whole allowlist for this worker.
    static func rules(socket: CInt, tapFDs: [CInt]) -> [SeccompRule] {
        WorkerPolicy.rules(socket: socket, device: DeviceSandbox(seccomp: net(tapFDs: tapFDs), heldFDs: tapFDs.count, maxFileSize: 0))
    }
}
