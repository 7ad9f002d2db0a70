import CShim
import Glibc
import Sandbox
import WorkerCore

// The system calls volt-blk-worker makes once its image is open and its socket is
// connected: Sandbox's BasePolicy (Swift runtime, threads, vhost-user on the given
// socket) and WorkerCore's WorkerPolicy (queue-thread event loops), plus the block set below. Default action: kill the process (SIGSYS). Every
// rule says why; image I/O is allowed only on the image's own fds, and writes only for
// a writable disk. No open/openat, no socket, no process creation, no ioctl.

enum SeccompPolicy {
    /// Block I/O on the already-open image fds (`imageFDs`: the I/O fd, plus the
    /// buffered fd used for bounce I/O with --direct).
    static func block(imageFDs: [CInt], readOnly: Bool) -> [SeccompRule] {
        var rules: [SeccompRule] = []
        for fd in imageFDs.map({ UInt64(UInt32(bitPattern: $0)) }) {
            rules += [
                SeccompRule("preadv", Arg(0) == fd, why: "IN: straight into guest memory, image fd only"),
                SeccompRule("pread64", Arg(0) == fd, why: "IN through a bounce buffer (--direct), image fd only"),
                SeccompRule("fdatasync", Arg(0) == fd, why: "FLUSH, and writethrough completion, image fd only"),
            ]
            if readOnly { continue }
            rules += [
                SeccompRule("pwritev", Arg(0) == fd, why: "OUT: straight from guest memory, writable image fd only"),
                SeccompRule("pwrite64", Arg(0) == fd, why: "OUT through a bounce buffer, and zero writes, writable image fd only"),
                SeccompRule("fallocate", Arg(0) == fd,
                            Arg(1) == UInt64(VOLT_FALLOC_FL_PUNCH_HOLE | VOLT_FALLOC_FL_KEEP_SIZE),
                            why: "DISCARD and WRITE_ZEROES (unmap): punch a hole, size unchanged"),
                SeccompRule("fallocate", Arg(0) == fd,
                            Arg(1) == UInt64(VOLT_FALLOC_FL_ZERO_RANGE | VOLT_FALLOC_FL_KEEP_SIZE),
                            why: "WRITE_ZEROES: zero a range, size unchanged"),
            ]
        }
        return rules
    }

    /// The whole allowlist for this worker.
    static func rules(socket: CInt, imageFDs: [CInt], readOnly: Bool) -> [SeccompRule] {
        let device = DeviceSandbox(seccomp: block(imageFDs: imageFDs, readOnly: readOnly), heldFDs: imageFDs.count, maxFileSize: nil)
        return WorkerPolicy.rules(socket: socket, device: device)
    }
}
