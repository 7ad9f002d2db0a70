import ArgumentParser
import Glibc
import Sandbox

@main
struct VoltVMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volt-vmm",
        abstract: "A KVM microVM monitor with one sandboxed process per virtio device.",
        discussion: """
        volt-vmm boots a Linux kernel (an ELF vmlinux through its PVH entry, or a
        bzImage through the 64-bit boot protocol) in a KVM virtual machine with a
        serial console on stdout. Each virtio device runs in its own sandboxed
        worker process (volt-blk-worker, volt-net-worker, volt-rng-worker) speaking
        vhost-user. A Firecracker-compatible REST API (`run --api-sock`, or the
        `firecracker` command line) drives a running VM; `ctl` is a client for it.

        Exit status: 0 when the guest resets itself (e.g. reboot=k), 1 on a guest
        crash, triple fault, KVM error or device failure, 2 on bad usage or
        configuration, 128+N when stopped by signal N.
        """,
        subcommands: [RunCommand.self, FirecrackerCommand.self, CtlCommand.self, SnapshotCommand.self, KernelCommand.self]
    )

    /// Run through a link named `firecracker`, volt-vmm is Firecracker's command line.
    static func main() {
        StartupTrace.mark("Swift main")
        let arguments = Array(CommandLine.arguments.dropFirst())
        if CommandLine.arguments.first?.split(separator: "/").last == "firecracker" {
            FirecrackerCommand.main(arguments)   // returns only when the command succeeded
        } else {
            main(arguments)
        }
    }
}
