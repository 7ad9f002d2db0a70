import CShim
import Glibc
import Sandbox

// The system calls volt-net-worker makes once its TAP queues are open and its socket is
// connected: Sandbox's BasePolicy (Swift runtime, threads, vhost-user on the given
// socket) plus the net set below. Default action: kill the process (SIGSYS). Every
// rule says why; TAP ioctls are allowed only on the TAP fds. No open/openat, no socket,
// no process creation.

enum SeccompPolicy {
    /// Packets and TAP control on the already-open TAP queue fds.
    static func net(tapFDs: [CInt]) -> [SeccompRule] {
        var rules: [SeccompRule] = [
            SeccompRule("epoll_wait", why: "each pair thread waits on kicks, its wake eventfd and its TAP"),
            SeccompRule("epoll_ctl", why: "kick fds replaced by SET_VRING_KICK; TAP interest follows the rings"),
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
        BasePolicy.base(socket: socket) + net(tapFDs: tapFDs)
    }
}
