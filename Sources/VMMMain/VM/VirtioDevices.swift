import IPC
import Logging

/// A virtio device on the command line.
enum VirtioDeviceSpec: Equatable {
    /// Connect to a vhost-user-blk backend someone else started (e.g. qemu-storage-daemon).
    case vhostUserBlock(socket: String)
    /// Connect to a vhost-user-net backend someone else started.
    case vhostUserNet(socket: String)
    /// A raw image served by a volt-blk-worker that volt-vmm spawns.
    case disk(DiskSpec)

    var kind: String {
        switch self {
        case .vhostUserBlock: return "vhost-user-blk"
        case .vhostUserNet: return "vhost-user-net"
        case .disk: return "disk"
        }
    }
}

/// The VM's virtio-mmio devices: transports on the MMIO bus at fixed windows, each with
/// its own IRQ, announced to Linux on the kernel command line.
struct VirtioDevices {
    static let deviceTypeNet: UInt32 = 1
    static let deviceTypeBlock: UInt32 = 2
    /// IRQs 5...15 are free ISA lines (the MP table routes 0-15 to IOAPIC pins 0-15).
    static let maxDevices = 11

    let bus = MMIOBus()
    private(set) var backends: [VhostUserBackend] = []
    /// Workers volt-vmm spawned, index-aligned with `backends` (nil for external backends).
    private(set) var workers: [WorkerProcess?] = []
    private(set) var transports: [VirtioMMIOTransport] = []
    /// `virtio_mmio.device=4K@0xd0000000:5 ...` for Linux's VIRTIO_MMIO_CMDLINE_DEVICES.
    private(set) var cmdlineAnnouncements: [String] = []

    init(specs: [VirtioDeviceSpec], vm: VirtualMachine, memory: GuestMemory, logger: Logger) throws {
        guard specs.count <= Self.maxDevices else {
            throw RunError.usage("\(specs.count) virtio devices requested; volt-vmm supports at most \(Self.maxDevices) per VM")
        }
        for (index, spec) in specs.enumerated() {
            let base = Layout.virtioMMIOBase + UInt64(index) * Layout.virtioMMIOSize
            let irq = Layout.virtioFirstIRQ + UInt32(index)
            let name = "\(spec.kind)\(index)"
            let backend: VhostUserBackend
            var worker: WorkerProcess?
            switch spec {
            case let .disk(disk):
                let image = try DiskImage.open(disk)
                defer { try? image.close() }
                var args = ["--fd", "\(WorkerProcess.socketFD)", "--image-fd", "\(WorkerProcess.socketFD + 1)",
                            "--num-queues", "\(disk.queues)"]
                if disk.readOnly { args.append("--readonly") }
                if disk.direct { args.append("--direct") }
                if let serial = disk.serial { args += ["--serial", serial] }
                let (process, connection) = try WorkerProcess.spawn(
                    name: "blk worker for \(name)", executable: try WorkerProcess.executable("volt-blk-worker"),
                    arguments: args, passing: [image.rawValue])
                worker = process
                do {
                    backend = try VhostUserBackend(name: name, frontend: Frontend(connection: connection), deviceType: Self.deviceTypeBlock,
                                                   defaultQueues: disk.queues, memory: memory, vm: vm, mmioBase: base, irq: irq)
                } catch {
                    process.stop()
                    throw error
                }
                logger.info("\(name): spawned volt-blk-worker pid \(process.pid) for \(disk.path)")
            case let .vhostUserBlock(socket):
                backend = try VhostUserBackend(name: name, frontend: try Self.connect(socket, spec), deviceType: Self.deviceTypeBlock,
                                               defaultQueues: 1, memory: memory, vm: vm, mmioBase: base, irq: irq)
            case let .vhostUserNet(socket):
                backend = try VhostUserBackend(name: name, frontend: try Self.connect(socket, spec), deviceType: Self.deviceTypeNet,
                                               defaultQueues: 2, memory: memory, vm: vm, mmioBase: base, irq: irq)
            }
            let transport = VirtioMMIOTransport(name: name, irq: irq, backend: backend, memory: memory, logger: logger,
                                                raiseInterrupt: {
                do { try vm.pulseIRQ(irq) } catch { logger.error("\(name): interrupt: \(error)") }
            })
            try bus.insert(transport, base: base, size: Layout.virtioMMIOSize)
            backends.append(backend)
            workers.append(worker)
            transports.append(transport)
            cmdlineAnnouncements.append("virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)")
            logger.info("\(name): connected, virtio-mmio at 0x\(String(base, radix: 16)) irq \(irq), \(backend.queueMaxSizes.count) queue(s)")
        }
    }

    /// Stops every spawned worker (SIGTERM, then SIGKILL) and reaps it.
    func stopWorkers() {
        for worker in workers { worker?.stop() }
    }

    private static func connect(_ socket: String, _ spec: VirtioDeviceSpec) throws -> Frontend {
        do {
            return try Frontend.connect(path: socket)
        } catch {
            throw RunError.usage("--\(spec.kind) \(socket): cannot connect (\(error)) — start the backend first and pass its socket path")
        }
    }
}
