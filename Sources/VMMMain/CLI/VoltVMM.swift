import ArgumentParser

@main
struct VoltVMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volt-vmm",
        abstract: "A KVM microVM monitor with one sandboxed process per virtio device.",
        discussion: """
        volt-vmm boots a Linux kernel (ELF vmlinux through its PVH entry, or a bzImage through
        the 64-bit boot protocol) in a KVM virtual machine with a serial console on stdout.

        Exit status: 0 when the guest resets itself (e.g. reboot=k), 1 on a guest crash,
        triple fault or KVM error, 2 on bad usage or configuration.
        """,
        subcommands: [RunCommand.self, KernelCommand.self]
    )
}
