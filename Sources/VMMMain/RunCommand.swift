import ArgumentParser
import CShim
import Glibc
import Logging
import Sandbox
import VMM

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest kernel with its serial console on stdin/stdout.",
        discussion: """
        The kernel is an ELF vmlinux with a PVH entry note (booted in 32-bit
        protected mode through PVH) or a bzImage (booted in long mode through the
        64-bit boot protocol). --kernel also accepts the name of a kernel built
        with `volt-vmm kernel build` ("default" is the newest).

        Every --disk and --net device is served by its own sandboxed worker
        process that volt-vmm spawns; --vhost-user-blk/-net connect to a backend
        someone else runs. Values from --config are overridden by flags.

        EXAMPLES
          volt-vmm run --kernel vmlinux --memory 256 --vcpus 2 \\
              --cmdline "console=ttyS0 reboot=k panic=-1"
          volt-vmm run --kernel default --initrd initrd.cpio.gz \\
              --disk path=root.img --net bridge=br0 --id web1
          volt-vmm run --config configs/examples/disk.json --metrics m.jsonl

        EXIT STATUS
          0      the guest reset (e.g. Linux with reboot=k) or shut down
          1      guest crash, triple fault, KVM error, or a runtime failure
                 (including a device worker that died with --restart=never,
                 or more often than the restart budget allows)
          2      invalid arguments or inputs (the message names the fix)
          128+N  stopped by signal N (Ctrl-C gives 130)
        """
    )

    @Option(help: ArgumentHelp("A VM config file (JSON, see configs/examples/); flags given here override its values.",
                               valueName: "file"))
    var config: String?

    @Option(help: "Kernel image: a vmlinux (PVH) or bzImage path, or a stored kernel name (required unless --config names one).")
    var kernel: String?

    @Option(help: "Kernel store to look names up in (default: ~/.cache/volt-vmm/kernels).")
    var kernelStore: String?

    @Option(help: "Initial ramdisk: a cpio archive, optionally compressed.")
    var initrd: String?

    @Option(help: "Kernel command line (default: \(Self.defaultCmdline)).")
    var cmdline: String?

    @Option(help: "Guest memory in MiB (default: 256).")
    var memory: UInt64?

    @Option(help: "Number of vCPUs (default: 1).")
    var vcpus: Int?

    static let defaultCmdline = "console=ttyS0 reboot=k panic=-1"

    @Option(help: ArgumentHelp(
        "A raw disk image served by a spawned volt-blk-worker: path=IMG[,ro=on][,direct=on][,queues=N][,serial=S] (repeatable).",
        valueName: "spec"))
    var disk: [String] = []

    @Option(help: ArgumentHelp(
        "A NIC served by a spawned volt-net-worker: tap=NAME (an existing TAP) or bridge=BR[,mode=direct|networkd][,id=ID] (volt-vmm creates tap-<id> on BR), plus [,mac=MAC][,mtu=N][,queues=N][,vhost=on] (repeatable).",
        valueName: "spec"))
    var net: [String] = []

    @Option(help: ArgumentHelp(
        "A virtio-rng (entropy) device served by a spawned volt-rng-worker from getrandom(2): on, or rate=BYTES[,burst=BYTES][,ops=N] to limit it to BYTES (and N requests) per second, plus a one-time burst.",
        valueName: "spec"))
    var entropy: String?

    @Option(help: ArgumentHelp(
        "Inject a fault in a spawned device's worker, for fault tests (repeatable): DEVICE:KIND[,K=V...], DEVICE = disk0, net1, ... (kind + index, as in the log). blk: crash,after=N | delay,ms=D | eio,rate=P | eio,sectors=A-B | syscall; net: crash,after=N | drop,percent=P | corrupt,percent=P | syscall; rng: crash,after=N | delay,ms=D | zero,percent=P | syscall.",
        valueName: "fault"))
    var fault: [String] = []

    @Option(help: ArgumentHelp(
        "The VM's id ([a-zA-Z0-9_-], at most 32): names its TAPs (tap-<id>) and networkd units, and keeps its generated MACs stable across runs (default: random 8 hex digits).",
        valueName: "id"))
    var id: String?

    @Option(name: .customLong("vhost-user-blk"), help: ArgumentHelp(
        "Connect a virtio-blk device to a running vhost-user backend's socket (repeatable).",
        valueName: "socket"))
    var vhostUserBlock: [String] = []

    @Option(name: .customLong("vhost-user-net"), help: ArgumentHelp(
        "Connect a virtio-net device to a running vhost-user backend's socket (repeatable).",
        valueName: "socket"))
    var vhostUserNet: [String] = []

    @Option(help: ArgumentHelp("Write metrics as JSON lines to this file: VMM counters (exits, boot time) and each device's counters, every --metrics-interval and at exit.",
                               valueName: "path"))
    var metrics: String?

    @Option(help: ArgumentHelp("Milliseconds between metrics lines (100 to 3600000).", valueName: "ms"))
    var metricsInterval: Int = 1000

    @Option(help: ArgumentHelp(
        "When a spawned volt-blk-worker / volt-net-worker / volt-rng-worker dies: on = respawn it and replay the device state while the guest keeps running (at most 5 restarts per worker per 60 s, 10 ms to 1 s backoff); never = stop the VM (exit 1). Backends given with --vhost-user-* are never restarted: their loss always stops the VM.",
        valueName: "on|never"))
    var restart: RestartMode = .on

    @Option(help: ArgumentHelp("Seccomp for volt-vmm's own threads: on (a forbidden call kills the VMM) or log (UNSAFE: only logs to the kernel audit log; debugging).",
                               valueName: "on|log"))
    var seccomp: SeccompSetting = .on

    @Flag(help: "UNSAFE, debugging only: no seccomp filter on volt-vmm's own threads (workers stay jailed).")
    var noSeccomp = false

    @Flag(help: "UNSAFE, debugging only: volt-vmm keeps its file-system access after setup (no Landlock on itself; workers stay jailed).")
    var noLandlock = false

    @Flag(help: .hidden)   // TEST ONLY: after locking down, report what file access and exec still work
    var probeLockdown = false

    @Option(help: ArgumentHelp("Serve Firecracker's REST API on this Unix socket (mode 0600): the VM may be configured by it, and without --kernel it waits for PUT /actions InstanceStart; flags given here are its initial configuration.",
                               valueName: "path"))
    var apiSock: String?

    @Option(help: ArgumentHelp("A directory snapshots may be written to (repeatable): after its lock-down volt-vmm can create files only beneath these (PUT /snapshot/create, volt-vmm snapshot).",
                               valueName: "dir"))
    var snapshotDir: [String] = []

    @Option(help: ArgumentHelp("Start from the snapshot in this directory (its files `state` and `memory`, as `volt-vmm snapshot` writes them) instead of booting a kernel.",
                               valueName: "dir"))
    var restore: String?

    @Option(help: ArgumentHelp("With --restore: rename a device's host resource, NAME=VALUE (repeatable): NAME is the device (disk0, net1, ... or its API id), VALUE the disk image or TAP it uses now — a clone needs its own.",
                               valueName: "name=value"))
    var override: [String] = []

    @Flag(help: "With --restore and --api-sock: start with the vCPUs paused (PATCH /vm Resumed runs them).")
    var restorePaused = false

    @Flag(help: "Print each start-up phase in µs on stderr when the VM ends (and each spawned worker's, after its first vhost-user message): since exec when VOLT_TRACE_EXEC_NS holds the parent's CLOCK_MONOTONIC ns from just before execve, else since the process's first constructor.")
    var traceStartup = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    func run() throws {
        StartupTrace.mark("arguments parsed")
        if traceStartup { setenv("VOLT_TRACE_STARTUP", "1", 1) }   // for the workers
        if apiSock != nil || restore != nil {
            do {
                let code = try apiRunner(socket: apiSock).run()
                if traceStartup { StartupTrace.dump(program: "volt-vmm") }
                throw ExitCode(code)
            } catch let error as ExitCode { throw error } catch {
                fputs("volt-vmm: \(error)\n", stderr)
                throw ExitCode(ExitStatus.code(for: error))
            }
        }
        let start = volt_monotonic_ns()
        let logger = LogSetup.logger(level: logLevel)
        do {
            let config = try validatedConfig()
            StartupTrace.mark("config validated")
            let runtime = try RuntimeDirectory(id: config.vmID)
            StartupTrace.mark("runtime directory")
            defer { runtime.remove() }
            logger.info("VM \(config.vmID): runtime directory \(runtime.path)")
            var machineConfig = config
            machineConfig.runtimeDirectory = runtime.path
            let outcome = try Machine(config: machineConfig, logger: logger, startNanoseconds: start).run()
            if traceStartup { StartupTrace.dump(program: "volt-vmm") }
            if case .failure = outcome {
                logger.error("\(outcome)")
            } else {
                logger.info("\(outcome)")
            }
            throw ExitCode(outcome.exitCode)
        } catch let error as ExitCode {
            throw error
        } catch {
            fputs("volt-vmm: \(error)\n", stderr)
            throw ExitCode(ExitStatus.code(for: error))
        }
    }

    func validatedConfig() throws -> MachineConfig {
        let file = try config.map { try VMConfigFile.load(path: $0) } ?? VMConfigFile()
        let base = config.map { Self.directory(of: $0) }
        let memory = self.memory ?? file.memoryMiB ?? 256
        let vcpus = self.vcpus ?? file.vcpus ?? 1
        guard let kernel = self.kernel ?? file.kernel.map({ Self.resolve($0, relativeTo: base, onlyIfExists: true) }) else {
            throw RunUsageError.noKernel
        }
        var cmdline = self.cmdline ?? file.cmdline ?? Self.defaultCmdline
        if let ip = file.kernelIPArgument { cmdline += " \(ip)" }
        let initrd = self.initrd ?? file.initrd.map { Self.resolve($0, relativeTo: base, onlyIfExists: false) }
        // Device flags replace the file's devices of the same kind.
        var disks = try disk.isEmpty
            ? file.disks.map { var d = $0; d.path = Self.resolve(d.path, relativeTo: base, onlyIfExists: false); return d }
            : disk.map { try DiskSpec(parsing: $0) }
        let nets = try (net.isEmpty ? file.networks : net).map { try NetSpec(parsing: $0) }
        let rngs = try entropy.map { [try EntropySpec(parsing: $0)] } ?? file.entropy.map { [$0] } ?? []
        var devices: [VirtioDeviceSpec] = disks.map { .disk($0) } + nets.map { .net($0) } + rngs.map { .entropy($0) }
            + vhostUserBlock.map { .vhostUserBlock(socket: $0) } + vhostUserNet.map { .vhostUserNet(socket: $0) }
        try FaultOption.apply(fault, to: &devices)
        let hostBytes = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let minimum = MachineConfig.minimumMemoryBytes >> 20
        guard memory >= minimum else {
            throw RunUsageError.memoryTooSmall(mib: memory, minimumMiB: minimum)
        }
        guard memory <= hostBytes >> 20 else {
            throw RunUsageError.memoryExceedsHost(mib: memory, hostMiB: hostBytes >> 20)
        }
        guard vcpus >= 1 else {
            throw RunUsageError.noVCPUs(vcpus)
        }
        guard (100...3_600_000).contains(metricsInterval) else {
            throw RunUsageError.metricsIntervalOutOfRange(metricsInterval)
        }
        let vmID = try (id ?? file.id).map { try VMID(given: $0) } ?? VMID()
        _ = try NICPlan.plans(for: nets, vmID: vmID)
        let kernelPath = try KernelStore.resolve(kernel, store: kernelStore)
        var machine = MachineConfig(kernelPath: kernelPath, initrdPath: initrd, cmdline: cmdline,
                             memoryBytes: memory << 20, vcpus: vcpus,
                             devices: devices,
                             vmID: vmID, restart: RestartPolicy(mode: restart))
        machine.seccomp = noSeccomp ? nil : (seccomp == .log ? .log : .kill)
        machine.landlock = !noLandlock
        machine.probeLockdown = probeLockdown
        machine.metricsPath = metrics
        machine.metricsIntervalMilliseconds = metricsInterval
        return machine
    }

    /// `--api-sock`: the flags (and `--config`) as the API's initial configuration; a kernel
    /// among them starts the VM at once.
    func apiRunner(socket: String?) throws -> APIRunner {
        let file = try config.map { try VMConfigFile.load(path: $0) } ?? VMConfigFile()
        let base = config.map { Self.directory(of: $0) }
        var resources = VMResources()
        let kernel = self.kernel ?? file.kernel.map { Self.resolve($0, relativeTo: base, onlyIfExists: true) }
        if let kernel {
            var cmdline = self.cmdline ?? file.cmdline ?? Self.defaultCmdline
            if let ip = file.kernelIPArgument { cmdline += " \(ip)" }
            resources.bootSource = BootSourceConfig(kernelImagePath: kernel, bootArgs: cmdline,
                                                    initrdPath: initrd ?? file.initrd.map { Self.resolve($0, relativeTo: base, onlyIfExists: false) })
        }
        resources.machine = MachineConfiguration(vcpuCount: vcpus ?? file.vcpus ?? 1, memSizeMiB: Int(memory ?? file.memoryMiB ?? 256))
        let disks = try disk.isEmpty
            ? file.disks.map { var d = $0; d.path = Self.resolve(d.path, relativeTo: base, onlyIfExists: false); return d }
            : disk.map { try DiskSpec(parsing: $0) }
        for (i, d) in disks.enumerated() { try resources.put(drive: DriveConfig(id: "disk\(i)", backend: .image(d))) }
        for (i, s) in vhostUserBlock.enumerated() { try resources.put(drive: DriveConfig(id: "vhost_user_blk\(i)", backend: .vhostUser(socket: s))) }
        let nets = try (net.isEmpty ? file.networks : net).map { try NetSpec(parsing: $0) }
        for (i, n) in nets.enumerated() { try resources.put(networkInterface: NetworkInterfaceConfig(id: "net\(i)", spec: n)) }
        resources.entropy = try entropy.map { try EntropySpec(parsing: $0) } ?? file.entropy
        resources.otherDevices = vhostUserNet.map { .vhostUserNet(socket: $0) }
        resources.faults = fault
        if let metrics { resources.metrics = MetricsConfig(metricsPath: metrics) }
        guard (100...3_600_000).contains(metricsInterval) else { throw RunUsageError.metricsIntervalOutOfRange(metricsInterval) }
        var runner = APIRunner(socketPath: socket, resources: resources, startAtOnce: kernel != nil,
                               vmID: try (id ?? file.id).map { try VMID(given: $0) } ?? VMID(),
                               kernelStore: kernelStore, defaultCmdline: Self.defaultCmdline)
        runner.logLevel = logLevel
        runner.seccomp = noSeccomp ? nil : (seccomp == .log ? .log : .kill)
        runner.landlock = !noLandlock
        let (noSeccomp, seccomp, noLandlock, probeLockdown, restart, interval) =
            (self.noSeccomp, self.seccomp, self.noLandlock, self.probeLockdown, self.restart, metricsInterval)
        let workingDirectory = WorkingDirectory.current
        runner.snapshotDirectories = try SnapshotDirectories.validate(snapshotDir, workingDirectory: workingDirectory)
        if let restore {
            guard kernel == nil, config == nil, disk.isEmpty, net.isEmpty, entropy == nil, vhostUserBlock.isEmpty, vhostUserNet.isEmpty,
                  memory == nil, vcpus == nil else {
                throw RunUsageError.restoreWithMachineFlags
            }
            guard !restorePaused || socket != nil else { throw RunUsageError.pausedWithoutAPI }
            var overrides: [String: String] = [:]
            for text in override {
                let kv = text.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else { throw RunUsageError.badOverride(text) }
                overrides[String(kv[0])] = String(kv[1])
            }
            let dir = restore.hasPrefix("/") ? restore : workingDirectory + "/" + restore
            runner.restore = SnapshotLoad(statePath: dir + "/state", memoryPath: dir + "/memory", resume: !restorePaused, overrides: overrides)
        } else if !override.isEmpty || restorePaused {
            throw RunUsageError.overrideWithoutRestore
        }
        runner.apply = { config in
            config.seccomp = noSeccomp ? nil : (seccomp == .log ? .log : .kill)
            config.landlock = !noLandlock
            config.probeLockdown = probeLockdown
            config.restart = RestartPolicy(mode: restart)
            config.metricsIntervalMilliseconds = interval
        }
        return runner
    }

    /// Paths in a config file are relative to the file. A kernel that is not an existing
    /// file there stays as written (it may be a kernel-store name).
    static func resolve(_ path: String, relativeTo base: String?, onlyIfExists: Bool) -> String {
        guard let base, !path.hasPrefix("/") else { return path }
        let joined = "\(base)/\(path)"
        return !onlyIfExists || access(joined, F_OK) == 0 ? joined : path
    }

    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }
}

enum SeccompSetting: String, ExpressibleByArgument, CaseIterable {
    case on, log
}

extension RestartMode: ExpressibleByArgument {}
