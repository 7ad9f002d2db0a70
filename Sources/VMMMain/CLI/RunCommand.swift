import ArgumentParser
import CShim
import Glibc
import Logging

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest kernel with its serial console on stdin/stdout.",
        discussion: """
        The kernel is an ELF vmlinux with a PVH entry note (booted in 32-bit protected mode
        through PVH) or a bzImage (booted in long mode through the 64-bit boot protocol).
        --kernel also accepts the name of a kernel built with `volt-vmm kernel build`.

        EXAMPLES
          volt-vmm run --kernel vmlinux --cmdline "console=ttyS0 reboot=k panic=-1" --memory 256 --vcpus 2
          volt-vmm run --kernel default --initrd initrd.cpio.gz

        EXIT STATUS
          0    the guest reset (e.g. Linux with reboot=k) or shut down
          1    guest crash, triple fault, KVM error, or a runtime failure (including a
               device worker that died with --restart=never, or more often than the
               restart budget allows)
          2    invalid arguments or inputs (the message names the fix)
          128+N  stopped by signal N (Ctrl-C gives 130)
        """
    )

    @Option(help: "Kernel image: a vmlinux (PVH) or bzImage path, or a stored kernel name.")
    var kernel: String

    @Option(help: "Kernel store to look names up in (default: ~/.cache/volt-vmm/kernels).")
    var kernelStore: String?

    @Option(help: "Initial ramdisk: a cpio archive, optionally compressed.")
    var initrd: String?

    @Option(help: "Kernel command line.")
    var cmdline: String = "console=ttyS0 reboot=k panic=-1"

    @Option(help: "Guest memory in MiB.")
    var memory: UInt64 = 256

    @Option(help: "Number of vCPUs.")
    var vcpus: Int = 1

    @Option(help: ArgumentHelp(
        "A raw disk image served by a spawned volt-blk-worker: path=IMG[,ro=on][,direct=on][,queues=N][,serial=S] (repeatable).",
        valueName: "spec"))
    var disk: [String] = []

    @Option(help: ArgumentHelp(
        "An existing TAP device served by a spawned volt-net-worker: tap=NAME[,mac=MAC][,mtu=N][,queues=N] (repeatable).",
        valueName: "spec"))
    var net: [String] = []

    @Option(name: .customLong("vhost-user-blk"), help: ArgumentHelp(
        "Connect a virtio-blk device to a running vhost-user backend's socket (repeatable).",
        valueName: "socket"))
    var vhostUserBlock: [String] = []

    @Option(name: .customLong("vhost-user-net"), help: ArgumentHelp(
        "Connect a virtio-net device to a running vhost-user backend's socket (repeatable).",
        valueName: "socket"))
    var vhostUserNet: [String] = []

    @Option(help: ArgumentHelp(
        "When a spawned volt-blk-worker / volt-net-worker dies: on = respawn it and replay the device state while the guest keeps running (at most 5 restarts per worker per 60 s, 10 ms to 1 s backoff); never = stop the VM (exit 1). Backends given with --vhost-user-* are never restarted: their loss always stops the VM.",
        valueName: "on|never"))
    var restart: RestartMode = .on

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    func run() throws {
        let start = volt_monotonic_ns()
        let logger = LogSetup.logger(level: logLevel)
        do {
            let config = try validatedConfig()
            let outcome = try Machine(config: config, logger: logger, startNanoseconds: start).run()
            if case .failure = outcome {
                logger.error("\(outcome)")
            } else {
                logger.info("\(outcome)")
            }
            throw ExitCode(outcome.exitCode)
        } catch let error as ExitCode {
            throw error
        } catch let error as RunError {
            fputs("volt-vmm: \(error)\n", stderr)
            throw ExitCode(error.exitCode)
        } catch {
            fputs("volt-vmm: \(error)\n", stderr)
            throw ExitCode(Self.exitCode(for: error))
        }
    }

    /// Errors in what the operator gave us (files, sizes) exit 2; host and KVM failures exit 1.
    static func exitCode(for error: Error) -> Int32 {
        switch error {
        case is KernelImageError, is BootLoaderError, is KernelError: return 2
        default: return 1
        }
    }

    func validatedConfig() throws -> MachineConfig {
        let hostBytes = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let minimum = Layout.minimumMemory >> 20
        guard memory >= minimum else {
            throw RunError.usage("--memory \(memory): a guest needs at least \(minimum) MiB")
        }
        guard memory <= hostBytes >> 20 else {
            throw RunError.usage("--memory \(memory): the host has only \(hostBytes >> 20) MiB of RAM")
        }
        guard vcpus >= 1 else {
            throw RunError.usage("--vcpus \(vcpus): a VM needs at least one vCPU")
        }
        let kernelPath = try KernelStore.resolve(kernel, store: kernelStore)
        return MachineConfig(kernelPath: kernelPath, initrdPath: initrd, cmdline: cmdline,
                             memoryBytes: memory << 20, vcpus: vcpus,
                             devices: try disk.map { .disk(try DiskSpec(parsing: $0)) }
                                 + net.map { .net(try NetSpec(parsing: $0)) }
                                 + vhostUserBlock.map { .vhostUserBlock(socket: $0) }
                                 + vhostUserNet.map { .vhostUserNet(socket: $0) },
                             restart: RestartPolicy(mode: restart))
    }
}
