import CShim
import Glibc
import Logging
import Sandbox

/// What a front door (`volt-vmm run`) asks for, already validated against its input.
public struct MachineConfig {
    public var kernelPath: String
    public var initrdPath: String?
    public var cmdline: String
    public var memoryBytes: UInt64
    public var vcpus: Int
    public var devices: [VirtioDeviceSpec]
    /// `--metrics PATH` and its interval.
    public var metricsPath: String?
    public var metricsIntervalMilliseconds = 1000
    /// Names the VM's TAPs and networkd units and seeds its MACs (`--id`, or random).
    public var vmID: VMID
    /// The VMM's own seccomp filters: nil is `--no-seccomp` (unsafe, debugging only).
    public var seccomp: SeccompMode? = .kill
    /// What happens when a spawned device worker dies (`--restart`).
    public var restart: RestartPolicy
    /// Landlock on volt-vmm itself once set up; false is `--no-landlock` (unsafe, debugging only).
    public var landlock = true
    /// The VM's runtime directory (the one path volt-vmm still changes after setup: it
    /// removes it at exit); nil when there is none.
    public var runtimeDirectory: String?
    /// TEST ONLY (hidden `--probe-lockdown`): report what still works once locked down.
    public var probeLockdown = false
    /// Files volt-vmm made that must go when it ends (the API socket): the launcher
    /// removes them, also after a SIGKILL.
    public var removeAtExit: [String] = []
    /// Where snapshots may be written once volt-vmm is locked down (each a Landlock grant
    /// to create files beneath it); nil: this VM takes no snapshots (no API).
    public var snapshotDirectories: [String]?
    /// Start from a snapshot instead of booting `kernelPath`.
    public var restore: RestoreSource?
    /// Each device's id in the API (drive_id, iface_id), kept in snapshots.
    public var deviceIDs: [String?] = []

    /// The smallest guest RAM volt-vmm boots (its fixed boot structures need it).
    public static let minimumMemoryBytes = Layout.minimumMemory

    public init(kernelPath: String, initrdPath: String? = nil, cmdline: String, memoryBytes: UInt64, vcpus: Int,
                devices: [VirtioDeviceSpec] = [], vmID: VMID = VMID(), restart: RestartPolicy = RestartPolicy()) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.cmdline = cmdline
        self.memoryBytes = memoryBytes
        self.vcpus = vcpus
        self.devices = devices
        self.vmID = vmID
        self.restart = restart
    }
}

/// Builds a VM from a config, runs it to completion and reports how it ended.
public final class Machine {
    let config: MachineConfig
    let logger: Logger
    let startNanoseconds: UInt64
    let counters = VMMCounters()
    /// The launcher runs and the lock-down began: a failure from here on cannot be retried
    /// in this process (it can open no file any more).
    public private(set) var isPastSetup = false

    public init(config: MachineConfig, logger: Logger, startNanoseconds: UInt64) {
        self.config = config
        self.logger = logger
        self.startNanoseconds = startNanoseconds
    }

    /// Builds the VM and runs it to its end. `onStarted` gets the VM's control once every
    /// thread runs (before the first guest instruction).
    public func run(onStarted: ((MachineControl) -> Void)? = nil) throws -> VMOutcome {
        StartupTrace.mark("Machine.run")
        let hypervisor = try Hypervisor()
        StartupTrace.mark("/dev/kvm opened, checked")
        let maxVCPUs = min(hypervisor.maxVCPUs, MPTable.maxCPUs)
        guard (1...maxVCPUs).contains(config.vcpus) else {
            throw MachineError.vcpusUnsupported(requested: config.vcpus, max: maxVCPUs)
        }
        let supportedCPUID = try CPUID.supported(kvmFD: hypervisor.fd)
        StartupTrace.mark("KVM_GET_SUPPORTED_CPUID")
        let cpuid = try config.restore.map { try $0.cpuid(supported: supportedCPUID, hypervisor: hypervisor) }
            ?? (0..<config.vcpus).map { CPUID.adjust(supportedCPUID, vcpuIndex: UInt32($0), vcpuCount: UInt32(config.vcpus)) }
        let memory = try GuestMemory(size: config.memoryBytes)
        StartupTrace.mark("guest memory (memfd, mmap)")
        if let restore = config.restore { try restore.loadMemory(into: memory, logger: logger) }
        let vm = try VirtualMachine(hypervisor: hypervisor, memory: memory)
        StartupTrace.mark("VM created (memory slots, irqchip, PIT)")
        if let restore = config.restore { try vm.restoreState(restore.state.vm) }
        let virtio = try VirtioDevices(specs: config.devices, vmID: config.vmID, vm: vm, memory: memory, logger: logger)
        StartupTrace.mark("virtio devices (workers spawned, handshakes done)")
        // Workers, TAPs and networkd units go on every way out of here, errors included.
        defer { virtio.shutdown(logger: logger) }
        let cmdline = config.restore?.state.cmdline ?? ([config.cmdline] + virtio.cmdlineAnnouncements).joined(separator: " ")

        let entry = try config.restore == nil
            ? BootLoader.prepare(memory: memory, kernelPath: config.kernelPath, initrdPath: config.initrdPath, cmdline: cmdline)
            : nil
        if config.restore == nil { try MPTable.write(to: memory, vcpuCount: config.vcpus) }
        StartupTrace.mark("kernel loaded, MP table")

        var vcpus: [VCPU] = []
        for index in 0..<config.vcpus {
            let vcpu = try vm.createVCPU(index: index)
            try CPUID.set(vcpuFD: vcpu.fd, entries: cpuid[index])
            if let restore = config.restore {
                try vcpu.restoreState(restore.state.vcpus[index])
            } else {
                try vcpu.setMSRs(BootRegisters.bootMSRs())
                var lapic = try vcpu.lapic()
                BootRegisters.configureLAPIC(&lapic)
                try vcpu.setLAPIC(lapic)
                if index == 0, let entry {
                    // Only the boot vCPU gets entry state; the others wait for INIT/SIPI in the kernel's LAPIC.
                    let (regs, sregs) = try BootRegisters.configure(for: entry, memory: memory, base: try vcpu.specialRegisters())
                    try vcpu.setSpecialRegisters(sregs)
                    try vcpu.setRegisters(regs)
                    try vcpu.setFPU(BootRegisters.fpu())
                }
            }
            vcpus.append(vcpu)
        }
        StartupTrace.mark("vCPUs created and set up")

        let lifecycle = try Lifecycle()
        let console = Console()
        let devices = try legacyDevices(vm: vm, console: console, lifecycle: lifecycle, mmio: virtio.bus)
        if let restore = config.restore {
            try restore.restoreDevices(serial: devices.serial, i8042: devices.i8042, transports: virtio.transports)
        }
        let snapshots = SnapshotSource(vm: vm, vcpus: vcpus, memory: memory, transports: virtio.transports, serial: devices.serial,
                                       i8042: devices.i8042, cpuid: cpuid, devices: virtio.snapshotDevices,
                                       deviceIDs: config.devices.indices.map { config.deviceIDs.indices.contains($0) ? config.deviceIDs[$0] : nil },
                                       msrIndices: try hypervisor.msrIndexList(), xsaveSize: hypervisor.xsaveSize, cmdline: cmdline,
                                       directories: config.snapshotDirectories ?? [])
        StartupTrace.mark("legacy devices, snapshot source")
        return try start(vcpus: vcpus, vm: vm, devices: devices, virtio: virtio, console: console, lifecycle: lifecycle,
                         snapshots: snapshots, onStarted: onStarted)
    }

    private struct LegacyDevices {
        let bus: PortIOBus
        let serial: Serial8250
        /// The keyboard controller, for `sendCtrlAltDel()`.
        let i8042: I8042
        let mmio: MMIOBus
    }

    private func legacyDevices(vm: VirtualMachine, console: Console, lifecycle: Lifecycle, mmio: MMIOBus) throws -> LegacyDevices {
        let bus = PortIOBus()
        let logger = self.logger
        let serial = Serial8250(output: { console.writeByte($0) }, raiseInterrupt: {
            do { try vm.pulseIRQ(Layout.serialIRQ) } catch { logger.error("serial interrupt: \(error)") }
        })
        try bus.insert(serial, base: Layout.serialPort, count: 8)
        let i8042 = I8042(onReset: { lifecycle.finish(.guestReset) }, raiseInterrupt: {
            do { try vm.pulseIRQ(Layout.i8042IRQ) } catch { logger.error("i8042 interrupt: \(error)") }
        })
        try bus.insert(i8042, base: Layout.i8042DataPort, count: 5)
        let counters = self.counters
        try bus.insert(BootTimer(startNanoseconds: startNanoseconds, report: { ms, value in
            _ = counters.bootMicroseconds.compareExchange(expected: 0, desired: UInt64(ms * 1000), ordering: .relaxed)
            logger.notice("guest boot-timer: \(formatMilliseconds(ms)) ms since start (value \(value))")
        }), base: Layout.bootTimerPort, count: 1)
        return LegacyDevices(bus: bus, serial: serial, i8042: i8042, mmio: mmio)
    }

    private func start(vcpus: [VCPU], vm: VirtualMachine, devices: LegacyDevices, virtio: VirtioDevices,
                       console: Console, lifecycle: Lifecycle, snapshots: SnapshotSource,
                       onStarted: ((MachineControl) -> Void)?) throws -> VMOutcome {
        let vmFD = vm.fd
        let backends = virtio.backends
        let serial = devices.serial
        let metrics = try config.metricsPath.map {
            try MetricsWriter(path: $0, vmm: counters, devices: virtio.metricsPages,
                              extras: Self.restartCounters(backends: backends, workers: virtio.workers),
                              startNanoseconds: startNanoseconds)
        }
        // Setup is over: what the VM may still start or remove goes to the launcher, and
        // volt-vmm gives up the file system before its first thread (threads inherit both).
        isPastSetup = true
        let launcher = try virtio.startLauncher(removeAtExit: config.removeAtExit)
        StartupTrace.mark("launcher forked")
        // Held to the end: its socket closing tells the launcher volt-vmm is gone.
        defer { withExtendedLifetime(launcher) {} }
        try lockDown()
        StartupTrace.mark("lock-down: Landlock, capabilities dropped")
        if config.probeLockdown { Self.probeLockdown() }
        signal(SIGPIPE, SIG_IGN)
        _ = volt_install_kick_handler(VCPUKick.signal)
        // Threads inherit this mask: only the signal thread takes termination signals.
        _ = volt_block_termination_signals()
        _ = try OSThread(name: "volt-signals", prepare: { self.filterThread(VMMSeccompPolicy.signals(), "signal", lifecycle) }) {
            let sig = volt_wait_termination_signal()
            if sig > 0 { lifecycle.finish(.signal(sig)) }
        }
        StartupTrace.mark("thread: signals")
        console.enterRawModeIfTerminal()
        defer { console.restoreTerminal() }
        _ = try OSThread(name: "volt-console", prepare: { self.filterThread(VMMSeccompPolicy.console(vmFD: vmFD), "console", lifecycle) }) {
            console.pumpInput { serial.enqueueInput($0) }
        }
        StartupTrace.mark("thread: console")
        let metricsThread = try metrics.map { writer in
            try OSThread(name: "volt-metrics", prepare: { self.filterThread(VMMSeccompPolicy.metrics(), "metrics", lifecycle) }) {
                [interval = config.metricsIntervalMilliseconds] in
                writer.run(intervalMilliseconds: interval, lifecycle: lifecycle)
            }
        }
        let supervisor = try OSThread(name: "volt-supervise", prepare: { self.filterThread(VMMSeccompPolicy.supervisor(), "supervisor", lifecycle) }) {
            Supervisor(backends: backends, workers: virtio.workers, lifecycle: lifecycle,
                       policy: self.config.restart, logger: self.logger).run()
        }
        StartupTrace.mark("thread: supervisor")
        let snapshotThread = try config.snapshotDirectories.map { _ in
            try SnapshotThread(prepare: { self.filterThread(VMMSeccompPolicy.snapshot(vmFD: vmFD), "snapshot", lifecycle) })
        }
        let vhost = virtio.vhostNets.map { (device: $0.vhostFD, tap: $0.tapFD) }
        let gate = StartGate()
        let startPaused = config.restore?.paused ?? false
        let pause = VCPUPause(vcpuCount: vcpus.count, logger: logger, paused: startPaused)
        let threads = try vcpus.map { vcpu in
            try OSThread(name: "volt-vcpu\(vcpu.index)", prepare: {
                self.filterThread(VMMSeccompPolicy.vcpu(vcpuFD: vcpu.fd, vmFD: vmFD, vhost: vhost), "vCPU \(vcpu.index)", lifecycle)
            }) {
                gate.wait()
                VCPURunner(vcpu: vcpu, ioBus: devices.bus, mmioBus: devices.mmio, lifecycle: lifecycle, logger: self.logger,
                           counters: self.counters, pause: pause).run()
            }
        }
        StartupTrace.mark("threads: vCPUs")
        logger.info("started \(vcpus.count) vCPU(s), \(config.memoryBytes >> 20) MiB")
        // The main thread's own filter comes last: creating the threads above needs calls it lacks.
        _ = filterThread(VMMSeccompPolicy.main(), "main", lifecycle)   // a failure has finished the VM
        let control = MachineControl(vm: vm, vcpus: vcpus, threads: threads.map(\.handle), pauseGate: pause,
                                     lifecycle: lifecycle, metrics: metrics, ctrlAltDel: { () throws(MachineControlError) in
            do { try devices.i8042.sendCtrlAltDel() } catch { throw .keyboard("\(error)") }
        }, snapshots: snapshotThread.map { (thread: $0, source: snapshots) },
           pausedClock: startPaused ? config.restore?.state.vm.clock : nil)
        if startPaused {
            // Restored without resume_vm: the answer comes once every vCPU has parked.
            gate.open()
            if !pause.waitUntilParked(milliseconds: 5000) { logger.warning("restored paused: not every vCPU parked within 5 s") }
            onStarted?(control)
        } else {
            onStarted?(control)
            StartupTrace.mark("main thread filtered; vCPU gate open")
            gate.open()
        }
        let outcome = lifecycle.wait()
        pause.end()
        snapshotThread?.end()
        // A vCPU may be blocked on a backend's socket (config access): unblock it.
        for backend in backends { backend.disconnect() }
        for (vcpu, thread) in zip(vcpus, threads) {
            vcpu.requestImmediateExit()
            _ = volt_thread_kill(UInt(thread.handle), VCPUKick.signal)
        }
        for thread in threads { thread.join() }
        supervisor.join()
        metricsThread?.join()
        metrics?.writeLine(final: true)
        for vcpu in vcpus {
            if let regs = try? vcpu.registers() {
                logger.debug("vCPU \(vcpu.index) stopped at RIP 0x\(String(regs.rip, radix: 16))")
            }
        }
        return outcome
    }
}

extension Machine {
    /// Landlock on the whole process and no capabilities (unless `--no-landlock`): from here
    /// on volt-vmm opens no path, creates nothing in the file system and removes only its
    /// runtime directory (as its owner: no capability is needed for that, for pidfd signals
    /// to its own workers or for closing the TAPs).
    func lockDown() throws {
        guard config.landlock else {
            logger.warning("--no-landlock: volt-vmm keeps its file-system access (unsafe)")
            return
        }
        var grants: [LandlockGrant] = []
        if let dir = config.runtimeDirectory {
            grants = [LandlockGrant(dir, .removeFiles), LandlockGrant(RuntimeDirectory.parent(of: dir), .removeDirectories)]
        }
        let snapshotDirectories = config.snapshotDirectories ?? []
        grants += snapshotDirectories.map { LandlockGrant($0, .writeNewFiles) }
        do {
            let abi = try Sandbox.lockDownFileSystem(keeping: grants)
            let snapshots = snapshotDirectories.isEmpty ? "" : ", and writing new snapshot files beneath \(snapshotDirectories.joined(separator: ", "))"
            logger.info("volt-vmm: Landlock ABI \(abi): no file-system access beyond removing \(config.runtimeDirectory ?? "nothing")\(snapshots)")
        } catch {
            throw MachineError.landlockFailed(error)
        }
        do {
            try Sandbox.dropAllCapabilities()
        } catch {
            throw MachineError.capabilityDropFailed(error)
        }
    }

    /// `probe: ...` lines on stderr: file access and exec after `lockDown` (tests expect EACCES).
    static func probeLockdown() {
        SandboxProbe.tryPaths()
        do {
            let pid = try Subprocess.spawn("/bin/true")
            _ = try? Subprocess.wait(pid)
            SandboxProbe.report("exec /bin/true", 0, 0, isFD: false)
        } catch let .spawnFailed(_, errno) {
            SandboxProbe.report("exec /bin/true", -1, errno.rawValue)
        } catch {
            SandboxProbe.report("exec /bin/true", -1, EIO)
        }
    }

    /// Loads a thread class's seccomp filter into the calling thread (unless
    /// `--no-seccomp`); a failure stops the VM rather than run unfiltered.
    func filterThread(_ rules: [SeccompRule], _ what: String, _ lifecycle: Lifecycle) -> Bool {
        guard let mode = config.seccomp else { return true }
        do {
            try Sandbox.filterThisThread(rules, mode: mode)
            return true
        } catch {
            lifecycle.finish(.failure("\(what) thread: cannot install its seccomp filter: \(error) — run with --no-seccomp to debug"))
            return false
        }
    }

    /// Each spawned worker's restart count, for `--metrics`.
    static func restartCounters(backends: [VhostUserBackend], workers: [SupervisedWorker?])
        -> [String: @Sendable () -> [(name: String, value: UInt64)]] {
        var extras: [String: @Sendable () -> [(name: String, value: UInt64)]] = [:]
        for (backend, worker) in zip(backends, workers) {
            guard let worker else { continue }
            extras[backend.name] = { [("restarts", worker.restarts.load(ordering: .relaxed))] }
        }
        return extras
    }
}

/// "12.345" for 12.3454 ms, without Foundation's String(format:).
func formatMilliseconds(_ ms: Double) -> String {
    let micros = Int((ms * 1000).rounded())
    let fraction = String(micros % 1000)
    return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}
