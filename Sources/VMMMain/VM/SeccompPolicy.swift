import CShim
import Glibc
import Sandbox

/// volt-vmm's seccomp allowlists, one per thread class. Today: the vCPU threads, which
/// run the guest and handle its port/MMIO exits. Default action: kill the process.
///
/// A vCPU thread needs: KVM_RUN on its own vCPU fd (and KVM_GET_REGS there to report
/// a crash), KVM_IRQ_LINE on the VM fd (the UART's interrupt), writes (serial output to
/// stdout, the lifecycle eventfd, log lines), and the vhost-user calls a guest's config
/// access or DRIVER_OK makes (sendmsg/recvmsg on backend sockets — any socket, since a
/// restarted worker gets a new one). Nothing here opens a path, creates a socket or a
/// process, or touches memory protections beyond the allocator's.
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

    static func vcpu(vcpuFD: Int32, vmFD: Int32) -> [SeccompRule] {
        let vcpu = UInt64(UInt32(bitPattern: vcpuFD)), vm = UInt64(UInt32(bitPattern: vmFD))
        return BasePolicy.runtime(pid: getpid()) + [
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_RUN), why: "run the guest"),
            SeccompRule("ioctl", Arg(0) == vcpu, Arg(1) == UInt64(VOLT_KVM_GET_REGS), why: "RIP for a crash or stop report"),
            SeccompRule("ioctl", Arg(0) == vm, Arg(1) == UInt64(VOLT_KVM_IRQ_LINE), why: "legacy device interrupts (UART)"),
            SeccompRule("rt_sigreturn", why: "return from the kick signal that ends KVM_RUN"),
            SeccompRule("sendmsg", why: "vhost-user requests for config space and DRIVER_OK (backend sockets)"),
            SeccompRule("recvmsg", why: "vhost-user replies (GET_CONFIG, GET_VRING_BASE, GET_INFLIGHT_FD with its fd)"),
            SeccompRule("shutdown", why: "closing a backend's socket when the VM stops"),
            SeccompRule("fcntl", Arg(1) == F_DUPFD_CLOEXEC, why: "OwnedFD duplicates of received fds"),
        ]
    }
}
