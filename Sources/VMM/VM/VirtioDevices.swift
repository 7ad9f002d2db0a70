import Glibc
import IPC
import Logging
import SystemPackage
import VirtioCore

/// A virtio device on the command line.
public enum VirtioDeviceSpec: Equatable {
    /// Connect to a vhost-user-blk backend someone else started (e.g. qemu-storage-daemon).
    case vhostUserBlock(socket: String)
    /// Connect to a vhost-user-net backend someone else started.
    case vhostUserNet(socket: String)
    /// A raw image served by a volt-blk-worker that volt-vmm spawns.
    case disk(DiskSpec)
    /// A TAP device served by a volt-net-worker that volt-vmm spawns.
    case net(NetSpec)
    /// A virtio-rng device served by a volt-rng-worker that volt-vmm spawns.
    case entropy(EntropySpec)

    var kind: String {
        switch self {
        case .vhostUserBlock: return "vhost-user-blk"
        case .vhostUserNet: return "vhost-user-net"
        case .disk: return "disk"
        case .net: return "net"
        case .entropy: return "rng"
        }
    }
}

/// The VM's virtio-mmio devices: transports on the MMIO bus at fixed windows, each with
/// its own IRQ, announced to Linux on the kernel command line.
struct VirtioDevices {
    /// IRQs 5...15 are free ISA lines (the MP table routes 0-15 to IOAPIC pins 0-15).
    static let maxDevices = 11

    let bus = MMIOBus()
    private(set) var backends: [VhostUserBackend] = []
    /// Workers volt-vmm spawned, index-aligned with `backends` (nil for external backends).
    private(set) var workers: [SupervisedWorker?] = []
    /// Disk images opened for blk workers: held for the VM's lifetime, so a restarted
    /// worker gets the same fds (TAP fds are held by `nics`).
    private var images: [OwnedFD] = []
    /// Counter pages shared with spawned workers, by device name.
    private(set) var metricsPages: [(name: String, page: MetricsPage)] = []
    /// Host sides of the NICs (TAPs, networkd units); held for the VM's lifetime.
    private var nics: [HostNIC] = []
    private(set) var transports: [VirtioMMIOTransport] = []
    /// NICs served by in-kernel vhost-net (`vhost=on` where /dev/vhost-net works).
    private(set) var vhostNets: [VhostNetBackend] = []
    /// `virtio_mmio.device=4K@0xd0000000:5 ...` for Linux's VIRTIO_MMIO_CMDLINE_DEVICES.
    private(set) var cmdlineAnnouncements: [String] = []
    /// The devices as a snapshot names them (host resources as used: the MAC a NIC got,
    /// a disk's size), or why this VM cannot be snapshotted.
    private(set) var snapshotDevices: Result<[SavedDevice], SnapshotError> = .success([])

    /// How `vhost=on` reaches the kernel (tests substitute a recording device).
    private let openVhostNet: () throws -> VhostKernelDevice

    init(specs: [VirtioDeviceSpec], vmID: VMID, vm: VirtualMachine, memory: GuestMemory, logger: Logger,
         openVhostNet: @escaping () throws -> VhostKernelDevice = { try VhostNetDevice() }) throws {
        self.openVhostNet = openVhostNet
        guard specs.count <= Self.maxDevices else {
            throw DeviceError.tooManyDevices(requested: specs.count, limit: Self.maxDevices)
        }
        var nicPlans = try NICPlan.plans(for: specs.compactMap { if case let .net(net) = $0 { net } else { nil } }, vmID: vmID)[...]
        var host = NetHostContext(vmID: vmID)
        do {
            try attach(specs: specs, nicPlans: &nicPlans, host: &host, vm: vm, memory: memory, logger: logger)
        } catch {
            // Undo what the devices before the failing one set up.
            shutdown()
            throw error
        }
    }

    /// What the NICs of one VM share while they are set up.
    private struct NetHostContext {
        let vmID: VMID
        var macs: Set<MACAddress> = []
    }

    private mutating func attach(specs: [VirtioDeviceSpec], nicPlans: inout ArraySlice<NICPlan>, host: inout NetHostContext,
                                 vm: VirtualMachine, memory: GuestMemory, logger: Logger) throws {
        for (index, spec) in specs.enumerated() {
            let base = Layout.virtioMMIOBase + UInt64(index) * Layout.virtioMMIOSize
            let irq = Layout.virtioFirstIRQ + UInt32(index)
            let name = "\(spec.kind)\(index)"
            let placement = Placement(vm: vm, memory: memory, mmioBase: base, irq: irq, logger: logger)
            var nic: HostNIC?
            if case let .net(net) = spec, let plan = nicPlans.popFirst() {
                let hostNIC = try HostNIC(plan: plan, vmID: host.vmID, name: name, taken: &host.macs, logger: logger)
                nics.append(hostNIC)
                nic = hostNIC
                if net.vhost, let kernel = try Self.vhostNet(name, net, hostNIC, placement: placement, open: openVhostNet) {
                    try add(name, kernel, at: base, irq: irq, vm: vm, memory: memory, logger: logger)
                    vhostNets.append(kernel)
                    snapshotDevices = .failure(.unsupported("\(name) is an in-kernel vhost-net NIC (vhost=on); its ring state is the kernel's"))
                    logger.info("\(name): in-kernel vhost-net on TAP \(hostNIC.tapName), virtio-mmio at 0x\(String(base, radix: 16)) irq \(irq), no worker")
                    continue
                }
            }
            let (backend, worker) = try Self.connect(spec, name: name, nic: nic, placement: placement, logger: logger,
                                                     pages: &metricsPages, images: &images)
            try add(name, backend, at: base, irq: irq, vm: vm, memory: memory, logger: logger)
            backends.append(backend)
            workers.append(worker)
            if case var .success(saved) = snapshotDevices {
                switch spec {
                case let .disk(d):
                    var st = stat()
                    let bytes = fstat(images.last!.rawValue, &st) == 0 ? UInt64(st.st_size) : 0
                    saved.append(.disk(path: d.path, readOnly: d.readOnly, direct: d.direct, queues: d.queues, serial: d.serial, bytes: bytes))
                case let .net(n):
                    let bridge: (String, Bool)? = if case let .bridge(b, mode) = n.host { (b, mode == .networkd) } else { nil }
                    saved.append(.net(tap: n.tap, bridge: bridge?.0, networkd: bridge?.1 ?? false, mac: nic.map { "\($0.mac)" } ?? "",
                                      mtu: n.mtu, queues: n.queues, id: n.id))
                case let .entropy(e):
                    saved.append(.entropy(bandwidth: e.bandwidth.map(SavedBucket.init), ops: e.ops.map(SavedBucket.init)))
                case .vhostUserBlock(let socket), .vhostUserNet(let socket):
                    snapshotDevices = .failure(.unsupported("\(name) is served by an external vhost-user back-end (\(socket)), whose state volt-vmm cannot take or give back"))
                    continue
                }
                snapshotDevices = .success(saved)
            }
            // A spawned worker jails itself before it answers its first message, so a
            // finished handshake means it is sandboxed (it exits if the jail fails).
            let jailed = worker == nil ? "" : ", worker sandboxed"
            logger.info("\(name): connected, virtio-mmio at 0x\(String(base, radix: 16)) irq \(irq), \(backend.queueMaxSizes.count) queue(s)\(jailed)")
        }
    }

    /// Puts a device's transport on the MMIO bus and announces it on the kernel command line.
    private mutating func add(_ name: String, _ backend: VirtioDeviceBackend, at base: UInt64, irq: UInt32,
                              vm: VirtualMachine, memory: GuestMemory, logger: Logger) throws {
        let transport = VirtioMMIOTransport(name: name, irq: irq, backend: backend, memory: memory, logger: logger,
                                            raiseInterrupt: {
            do { try vm.pulseIRQ(irq) } catch { logger.error("\(name): interrupt: \(error)") }
        })
        try bus.insert(transport, base: base, size: Layout.virtioMMIOSize)
        transports.append(transport)
        cmdlineAnnouncements.append("virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)")
    }

    /// `vhost=on`: the NIC served by the kernel's vhost-net, or nil (logged why) when
    /// /dev/vhost-net cannot be opened or claimed or lacks what we drive: then volt-net-worker
    /// serves it as without vhost=on.
    private static func vhostNet(_ name: String, _ net: NetSpec, _ nic: HostNIC, placement: Placement,
                                 open: () throws -> VhostKernelDevice) throws -> VhostNetBackend? {
        guard let tap = nic.tap else { return nil }
        do {
            return try VhostNetBackend(name: name, device: try open(), tap: tap, mac: nic.mac, mtu: net.mtu,
                                       memory: placement.memory, vm: placement.vm, mmioBase: placement.mmioBase,
                                       irq: placement.irq, logger: placement.logger)
        } catch let error as VhostNetError {
            placement.logger.notice("\(name): vhost=on: \(error) — using volt-net-worker")
            return nil
        }
    }

    /// Forks the launcher with everything the running VM may still start or remove — each
    /// spawned worker's command line, `networkctl reload` and the networkd units — and routes
    /// restarts and unit removal through it, so volt-vmm can give up execve and file access.
    /// `removeAtExit`: more files for the launcher to remove when volt-vmm ends (the API socket).
    func startLauncher(removeAtExit: [String] = []) throws -> Launcher {
        var commands = workers.compactMap { $0?.launchCommand }
        var files: [String] = removeAtExit
        var nicFiles: [[Int]] = []
        var reloads: [Int?] = []
        for nic in nics {
            nicFiles.append(nic.networkdUnitFiles.indices.map { files.count + $0 })
            files += nic.networkdUnitFiles
            if let networkctl = nic.networkctl {
                let command = Launcher.Command(executable: networkctl, arguments: ["reload"], fdCount: 0)
                if let index = commands.firstIndex(of: command) { reloads.append(index); continue }
                commands.append(command)
                reloads.append(commands.count - 1)
            } else {
                reloads.append(nil)
            }
        }
        // After a SIGKILL of volt-vmm the launcher removes the units and reloads networkd.
        let launcher = try Launcher(commands: commands, files: files, cleanup: reloads.compactMap { $0 }.first)
        var command = 0
        for worker in workers.compactMap({ $0 }) {
            worker.restartThrough(launcher, command: command)
            command += 1
        }
        for (nic, (files, reload)) in zip(nics, zip(nicFiles, reloads)) {
            nic.releaseThrough(launcher, files: files, reload: reload)
        }
        return launcher
    }

    /// Stops every spawned worker (SIGTERM, then SIGKILL) and reaps it.
    func stopWorkers() {
        for worker in workers { worker?.stop() }
    }

    /// Stops the workers, then releases the NICs' host side: closing the last TAP fds
    /// deletes the TAPs volt-vmm created, and networkd units are removed. Idempotent.
    func shutdown(logger: Logger? = nil) {
        stopWorkers()
        for worker in workers.compactMap({ $0 }) {
            let process = worker.process
            if let end = process.waitForExit(milliseconds: 0) {
                logger?.info("\(worker.name): pid \(process.pid) \(WorkerProcess.describe(end))")
            }
        }
        for nic in nics { nic.release() }
    }

    /// Where a device sits: its VM, memory, MMIO window and IRQ.
    private struct Placement {
        let vm: VirtualMachine
        let memory: GuestMemory
        let mmioBase: UInt64
        let irq: UInt32

        let logger: Logger

        func backend(_ name: String, _ frontend: Frontend, type: VirtioDeviceType, queues: Int, restartable: Bool = false) throws -> VhostUserBackend {
            try VhostUserBackend(name: name, frontend: frontend, deviceType: type.rawValue, defaultQueues: queues,
                                 memory: memory, vm: vm, mmioBase: mmioBase, irq: irq, restartable: restartable, logger: logger)
        }
    }

    /// Connects one device to its backend: a socket someone else serves, or a worker we spawn.
    private static func connect(_ spec: VirtioDeviceSpec, name: String, nic: HostNIC?, placement: Placement,
                                logger: Logger, pages: inout [(name: String, page: MetricsPage)],
                                images: inout [OwnedFD]) throws -> (VhostUserBackend, SupervisedWorker?) {
        switch spec {
        case let .vhostUserBlock(socket):
            return (try placement.backend(name, try connect(socket, spec), type: .block, queues: 1), nil)
        case let .vhostUserNet(socket):
            return (try placement.backend(name, try connect(socket, spec), type: .net, queues: 2), nil)
        case let .disk(disk):
            let image = try DiskImage.open(disk)
            images.append(OwnedFD(taking: image.rawValue))
            let page = try MetricsPage.create()
            var fds = InheritedFDs()
            let device = BlockArguments(image: .fd(fds.pass(image.rawValue)), readOnly: disk.readOnly, direct: disk.direct,
                                        numQueues: disk.queues, serial: disk.serial)
            let arguments = WorkerArguments(endpoint: .inheritedFd(InheritedFDs.socket), metricsFD: fds.pass(page.fd.rawValue),
                                            faults: disk.faults, device: device)
            let spawned = try spawn("volt-blk-worker", arguments.encode(), passing: fds.passed, name: name, what: disk.path,
                                    type: .block, queues: disk.queues, placement: placement, logger: logger)
            pages.append((name, page))
            return spawned
        case let .net(net):
            guard let nic, let tap = nic.tap else { throw DeviceError.noHostNIC(device: name) }
            let page = try MetricsPage.create()
            var fds = InheritedFDs()
            let device = NetArguments(taps: .fds(tap.queues.map { fds.pass($0.rawValue) }), mac: nic.mac.bytes, mtu: net.mtu.map { UInt16(clamping: $0) },
                                      queuePairs: net.queues)
            let arguments = WorkerArguments(endpoint: .inheritedFd(InheritedFDs.socket), metricsFD: fds.pass(page.fd.rawValue),
                                            faults: net.faults, device: device)
            let spawned = try spawn("volt-net-worker", arguments.encode(), passing: fds.passed,
                                    name: name, what: "TAP \(tap.name), guest MAC \(nic.mac)",
                                    type: .net, queues: net.queues > 1 ? 2 * net.queues + 1 : 2, placement: placement, logger: logger)
            pages.append((name, page))
            return spawned
        case let .entropy(entropy):
            let page = try MetricsPage.create()
            var fds = InheritedFDs()
            let arguments = WorkerArguments(endpoint: .inheritedFd(InheritedFDs.socket), metricsFD: fds.pass(page.fd.rawValue),
                                            faults: entropy.faults, device: entropy.arguments)
            let limit = entropy.bandwidth.map { "at most \($0.size) bytes per \($0.refillMilliseconds) ms" } ?? "no rate limit"
            let spawned = try spawn("volt-rng-worker", arguments.encode(), passing: fds.passed, name: name,
                                    what: "entropy from getrandom(2), \(limit)", type: .entropy, queues: 1,
                                    placement: placement, logger: logger)
            pages.append((name, page))
            return spawned
        }
    }

    private static func spawn(_ executable: String, _ args: [String], passing fds: [Int32], name: String, what: String,
                              type: VirtioDeviceType, queues: Int, placement: Placement, logger: Logger) throws -> (VhostUserBackend, SupervisedWorker?) {
        let kind = type == .block ? "blk" : type == .net ? "net" : "rng"
        let (worker, connection) = try SupervisedWorker.spawn(name: "\(kind) worker for \(name)",
                                                              executable: try WorkerProcess.executable(executable),
                                                              arguments: args, passing: fds)
        do {
            let backend = try placement.backend(name, Frontend(connection: connection), type: type, queues: queues, restartable: true)
            logger.info("\(name): spawned \(executable) pid \(worker.process.pid) for \(what)")
            return (backend, worker)
        } catch {
            // A worker that died during the handshake (e.g. `--fault DEVICE:syscall`) is
            // named with how it ended: that, not the closed socket, is the cause.
            if let end = worker.process.waitForExit(milliseconds: 500) {
                throw DeviceError.workerEnded(device: name, worker: "\(kind) worker for \(name)", how: worker.describe(end, pid: worker.process.pid))
            }
            worker.stop()
            throw error
        }
    }

    private static func connect(_ socket: String, _ spec: VirtioDeviceSpec) throws -> Frontend {
        do {
            return try Frontend.connect(path: socket)
        } catch {
            throw DeviceError.backendUnreachable(kind: spec.kind, socket: socket, error)
        }
    }
}
