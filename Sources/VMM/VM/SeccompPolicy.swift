import CShim
import Glibc
import Sandbox

/// volt-vmm's seccomp allowlists, one per thread class: vCPU, signal, console, metrics,
/// supervisor and the main thread. Default action: kill the process.
///
/// No class may start a process, open a path or signal another process by pid: restarts and
/// `networkctl` go through the launcher (its socket), workers are signalled through their
/// pidfds, and Landlock denies the file system besides (see `Machine.lockDown`).
///
/// A vCPU thread needs: KVM_RUN on its own vCPU fd (and KVM_GET_REGS there to report
/// a crash), KVM_IRQ_LINE on the VM fd (the UART's and the keyboard's interrupts),
/// writes (serial output to stdout, the lifecycle eventfd, log lines), and the vhost-user
/// calls a guest's config access or DRIVER_OK makes (sendmsg/recvmsg on backend sockets
/// — any socket, since a restarted worker gets a new one). Nothing here opens a path,
/// creates a socket or a process, or touches memory protections beyond the allocator's.
enum VMMSeccompPolicy {
    /// The signal thread: waits in sigtimedwait, then writes the lifecycle eventfd.
    static func signals() -> [SeccompRule] {
        BasePolicy.runtime(pid: getpid())
    }

    /// The console thread: reads stdin, fills the UART FIFO, raises its interrupt, and
    /// naps while the guest's FIFO is full.
    static func console(vmFD: Int32) -> [SeccompRule] {
        let vm = UInt64(UInt32(bitPattern: vmFD))
        return BasePolicy.runtime(pid: getpid()) + naps + [
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_IRQ_LINE), why: "the UART's receive interrupt"),
        ]
    }

    /// The metrics thread: sleeps, reads the counter pages (memory), appends to its open file.
    static func metrics() -> [SeccompRule] {
        BasePolicy.runtime(pid: getpid()) + naps
    }

    private static let naps = [
        SeccompRule("clock_nanosleep", why: "usleep between polls"),
        SeccompRule("nanosleep", why: "usleep on older glibc"),
    ]

    /// The supervisor thread: watches backends and worker pidfds; restarts a worker by
    /// asking the launcher, then replays the device state over the new socket.
    static func supervisor() -> [SeccompRule] {
        BasePolicy.runtime(pid: getpid()) + naps + workerControl + [
            SeccompRule("socketpair", Arg(0) == UInt64(AF_UNIX), why: "the new worker's vhost-user socketpair"),
            SeccompRule("pidfd_open", why: "the new worker's pidfd (a child of volt-vmm)"),
            SeccompRule("fcntl", Arg(1) == F_DUPFD_CLOEXEC, why: "OwnedFD duplicates of received fds"),
        ]
    }

    /// The main thread once every other thread runs: waits for the outcome, stops the vCPUs,
    /// stops and reaps the workers, has the launcher remove networkd units, removes the
    /// runtime directory (Landlock allows nothing else), restores the terminal, exits.
    static func main() -> [SeccompRule] {
        BasePolicy.runtime(pid: getpid()) + workerControl + [
            SeccompRule("ioctl", Arg(1) == UInt64(VOLT_KVM_GET_REGS), why: "each vCPU's RIP in the debug log at exit"),
            SeccompRule("ioctl", Arg(0) == UInt64(0), Arg(1) == UInt64(0x5401) /* TCGETS */, why: "terminal state of stdin"),
            SeccompRule("ioctl", Arg(0) == UInt64(0), Arg(1) == UInt64(0x5402) /* TCSETS */, why: "restoring the terminal (raw mode off)"),
            SeccompRule("unlink", why: "the runtime directory's pid file (Landlock: only there)"),
            SeccompRule("rmdir", why: "the runtime directory (Landlock: only its parent)"),
        ]
    }

    /// The API thread (`APIThread`), filtered from its start, before any VM exists: its
    /// socket's connections, and what a request may do to a running VM — kick the vCPUs
    /// (pause: tgkill on this process's own threads, in the runtime set), put kvmclock
    /// back (KVM_GET/SET_CLOCK), raise the keyboard interrupt (KVM_IRQ_LINE), write a
    /// metrics line (write, in the runtime set). The VM's fds do not exist yet when the
    /// filter is made, so the KVM ioctls are filtered by request, not fd: on any other fd
    /// they fail (ENOTTY). Nothing here opens a path or creates a socket or process.
    static func api(listeningFD: Int32) -> [SeccompRule] {
        let listener = UInt64(UInt32(bitPattern: listeningFD))
        return BasePolicy.runtime(pid: getpid()) + [
            SeccompRule("poll", why: "the listening socket and the connections"),
            SeccompRule("accept4", Arg(0) == listener, why: "new connections, on the API socket only"),
            SeccompRule("sendto", why: "answers (send with MSG_NOSIGNAL)"),
            SeccompRule("clock_gettime", why: "idle timeouts and pause deadlines (when the vDSO cannot serve it)"),
            SeccompRule("ioctl", Arg(1) == UInt64(VOLT_KVM_GET_CLOCK), why: "pause: kvmclock read once the vCPUs stopped"),
            SeccompRule("ioctl", Arg(1) == UInt64(VOLT_KVM_SET_CLOCK), why: "resume: kvmclock continues where it stopped"),
            SeccompRule("ioctl", Arg(1) == UInt64(VOLT_KVM_IRQ_LINE), why: "SendCtrlAltDel: the i8042 keyboard interrupt"),
        ]
    }

    /// The snapshot thread: reads KVM state of the parked vCPUs and the VM, stops and
    /// starts the device rings over vhost-user, and creates and writes the snapshot files
    /// — create-only opens, which Landlock confines to the `--snapshot-dir` directories.
    static func snapshot(vmFD: Int32) -> [SeccompRule] {
        let vm = UInt64(UInt32(bitPattern: vmFD))
        let vcpuReads: [(UInt, String)] = [
            (VOLT_KVM_GET_REGS, "registers"), (VOLT_KVM_GET_SREGS, "special registers"), (VOLT_KVM_GET_XSAVE, "XSAVE area"),
            (VOLT_KVM_GET_XSAVE2, "XSAVE area (large)"), (VOLT_KVM_GET_XCRS, "XCRs"), (VOLT_KVM_GET_DEBUGREGS, "debug registers"),
            (VOLT_KVM_GET_LAPIC, "LAPIC"), (VOLT_KVM_GET_MP_STATE, "MP state"), (VOLT_KVM_GET_VCPU_EVENTS, "pending events"),
            (VOLT_KVM_GET_MSRS, "MSRs"), (VOLT_KVM_GET_TSC_KHZ, "TSC rate"),
        ]
        let createOnly = UInt64(O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        return BasePolicy.runtime(pid: getpid()) + vcpuReads.map { request, what in
            // By request, not fd: each vCPU fd would be a rule per request; these only read.
            SeccompRule("ioctl", Arg(1) == UInt64(request), why: "snapshot: a parked vCPU's \(what)")
        } + [
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_GET_IRQCHIP), why: "snapshot: PIC and IOAPIC state"),
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_GET_PIT2), why: "snapshot: PIT state"),
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_GET_CLOCK), why: "snapshot: kvmclock"),
            SeccompRule("openat", Arg(2) == createOnly, why: "a new snapshot file (O_CREAT|O_EXCL, write-only; Landlock: only beneath --snapshot-dir)"),
            SeccompRule("ftruncate", why: "the memory file's size (sparse)"),
            SeccompRule("pwrite64", why: "guest memory into the memory file"),
            SeccompRule("fdatasync", why: "both files on disk before they are renamed into place"),
            SeccompRule("lseek", why: "SEEK_DATA/SEEK_HOLE over guest memory: only touched pages are written"),
            SeccompRule("renameat", why: "a complete file into place"),
            SeccompRule("renameat2", why: "a complete file into place (glibc's renameat)"),
            SeccompRule("unlink", why: "removing a partial file after a failure"),
            SeccompRule("sendmsg", why: "vhost-user: stopping and restarting each device's rings"),
            SeccompRule("recvmsg", why: "vhost-user replies (GET_VRING_BASE)"),
            SeccompRule("fcntl", Arg(1) == F_DUPFD_CLOEXEC, why: "OwnedFD duplicates of received fds"),
        ]
    }

    /// Stopping and reaping workers, and requests to the launcher (both main and supervisor).
    private static let workerControl = [
        SeccompRule("poll", why: "worker pidfds and vhost-user sockets"),
        SeccompRule("pidfd_send_signal", why: "SIGTERM/SIGKILL to a worker, through its pidfd only"),
        SeccompRule("wait4", why: "reaping workers and the launcher's commands (waitpid)"),
        SeccompRule("sendmsg", why: "vhost-user requests; launcher requests with fds"),
        SeccompRule("recvmsg", why: "vhost-user replies"),
        SeccompRule("recvfrom", why: "launcher replies (recv)"),
        SeccompRule("shutdown", why: "hanging up on a dead or stopping backend"),
    ]

    /// `vhost`: each in-kernel vhost-net NIC's device and TAP fds — a guest's DRIVER_OK or
    /// reset makes its vCPU issue the vhost ioctls and TUNSETOFFLOAD.
    static func vcpu(vcpuFD: Int32, vmFD: Int32, vhost: [(device: Int32?, tap: Int32)] = []) -> [SeccompRule] {
        let vcpu = UInt64(UInt32(bitPattern: vcpuFD)), vm = UInt64(UInt32(bitPattern: vmFD))
        let vhostRules = vhost.flatMap { nic -> [SeccompRule] in
            let tap = SeccompRule("ioctl", Arg(0) == UInt64(UInt32(bitPattern: nic.tap)), Arg(1) == UInt64(volt_tunsetoffload_request),
                                  why: "vhost-net NIC: TAP offloads for the features the driver acked")
            guard let device = nic.device else { return [tap] }
            return [tap, SeccompRule("ioctl", Arg(0) == UInt64(UInt32(bitPattern: device)),
                                     why: "vhost-net NIC: VHOST_* requests on its /dev/vhost-net fd (it takes no other ioctl)")]
        }
        return BasePolicy.runtime(pid: getpid()) + vhostRules + [
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_RUN), why: "run the guest"),
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_GET_REGS), why: "RIP for a crash or stop report"),
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_GET_MSRS), why: "resume: the guest TSC, to check a TSC offset took"),
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_GET_DEVICE_ATTR), why: "resume: the TSC offset, to take the paused time out"),
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_SET_DEVICE_ATTR), why: "resume: the TSC offset less the paused time"),
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_IRQ_LINE), why: "legacy device interrupts (UART, i8042 keyboard)"),
            SeccompRule("rt_sigreturn", why: "return from the kick signal that ends KVM_RUN"),
            SeccompRule("sendmsg", why: "vhost-user requests for config space and DRIVER_OK (backend sockets)"),
            SeccompRule("recvmsg", why: "vhost-user replies (GET_CONFIG, GET_VRING_BASE, GET_INFLIGHT_FD with its fd)"),
            SeccompRule("shutdown", why: "closing a backend's socket when the VM stops"),
            SeccompRule("fcntl", Arg(1) == F_DUPFD_CLOEXEC, why: "OwnedFD duplicates of received fds"),
        ]
    }
}
