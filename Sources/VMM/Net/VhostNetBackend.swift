import CShim
import Logging
import Synchronization
import VirtioCore

/// `--net ...,vhost=on`: one queue pair served by the kernel's vhost-net, no worker process.
/// volt-vmm owns the config space (MAC, link up, MTU) and the TAP's offloads; at DRIVER_OK it
/// hands the kernel the memory table, each ring's addresses, the same ioeventfd/irqfd pair a
/// worker would get, and the TAP (VHOST_NET_SET_BACKEND). Queue 0 is RX, 1 is TX.
final class VhostNetBackend: VirtioDeviceBackend, @unchecked Sendable {
    // @unchecked: `started` is behind a Mutex; the rest is immutable after init.
    static let queueSize: UInt16 = 256
    /// The virtio header a VERSION_1 driver uses (struct virtio_net_hdr_mrg_rxbuf).
    static let vnetHeaderSize: Int32 = 12
    /// What the kernel device may run; everything else it offers is left out.
    static let ringFeatures = NetFeature.version1 | NetFeature.mrgRxbuf | NetFeature.eventIdx | NetFeature.indirectDesc

    let name: String
    let deviceType = VirtioDeviceType.net.rawValue
    let offeredFeatures: UInt64
    let queueMaxSizes: [UInt16] = [queueSize, queueSize]
    private let device: VhostKernelDevice
    let tapFD: Int32
    /// The kernel device's fd (vCPU threads issue its ioctls at DRIVER_OK and reset).
    var vhostFD: Int32? { device.fileDescriptor }
    private let config: [UInt8]
    private let memory: GuestMemory
    private let notifiers: QueueNotifiers
    private let logger: Logger
    private let started = Mutex<[Int]>([])

    /// Fails (and the caller falls back to volt-net-worker) when the kernel device lacks what
    /// volt-vmm drives: VERSION_1, one queue pair.
    init(name: String, device: VhostKernelDevice, tap: TapDevice, mac: MACAddress, mtu: Int?,
         memory: GuestMemory, vm: VirtualMachine, mmioBase: UInt64, irq: UInt32, logger: Logger) throws {
        guard device.features & NetFeature.version1 != 0 else {
            throw VhostNetError.unsupported("the kernel's vhost-net does not offer VIRTIO_F_VERSION_1")
        }
        guard tap.queues.count == 1 else {
            throw VhostNetError.unsupported("vhost=on serves one queue pair; queues=\(tap.queues.count) needs volt-net-worker")
        }
        self.name = name
        self.device = device
        tapFD = tap.queues[0].rawValue
        offeredFeatures = (device.features & Self.ringFeatures) | NetFeature.mac | NetFeature.status
            | (mtu != nil ? NetFeature.mtu : 0) | NetDeviceModel.offloadFeatures(tapOffloads: NetDeviceModel.probeTapOffloads(fd: tapFD))
        // Now, while unfiltered: vCPU threads may only set offloads on the TAP later.
        let r = volt_tap_set_vnet_hdr_size(tapFD, Self.vnetHeaderSize)
        guard r >= 0 else { throw VhostNetError.unsupported("TUNSETVNETHDRSZ \(Self.vnetHeaderSize) on TAP \(tap.name) failed (errno \(-r))") }
        config = NetDeviceModel.configBytes(mac: mac.bytes, queuePairs: 1, mtu: mtu.map { UInt16(clamping: $0) })
        self.memory = memory
        self.logger = logger
        notifiers = try QueueNotifiers(vm: vm, mmioBase: mmioBase, irq: irq, queues: 2)
    }

    func readConfig(offset: UInt32, size: UInt32) throws -> [UInt8] {
        (Int(offset)..<Int(offset) + Int(size)).map { $0 < config.count ? config[$0] : 0 }
    }

    /// The config space is device-written only (5.1.4).
    func writeConfig(offset: UInt32, data: [UInt8]) throws {}

    func activate(features: UInt64, queues: [Int: VirtqueueConfig]) throws {
        try started.withLock { started in
            do {
                try device.setFeatures(features & device.features)
                try device.setMemoryTable(memory.map.descriptors.map { ($0.guestAddress.rawValue, $0.size, $0.userAddress) })
                let offload = NetDeviceModel.tapOffload(acked: features)
                guard volt_tap_set_offload(tapFD, offload) >= 0 else {
                    throw VhostNetError.offloadRefused(device: name, offload: offload)
                }
                for (index, q) in queues.sorted(by: { $0.key < $1.key }) where index < 2 {
                    started.append(index)   // before SET_BACKEND: a failure below stops it again
                    try device.setVringNum(index, q.size)
                    let ring = try q.hostAddresses(in: memory)
                    try device.setVringAddr(index, descriptors: ring.descriptors, used: ring.used, available: ring.available)
                    try device.setVringBase(index, 0)
                    try device.setVringKick(index, eventFD: notifiers.kickFDs[index].rawValue)
                    try device.setVringCall(index, eventFD: notifiers.callFD.rawValue)
                    try device.setBackend(index, tapFD: tapFD)
                }
            } catch {
                // No ring may keep running on addresses the driver will reprogram.
                stop(&started)
                throw error
            }
            logger.info("\(name): vhost-net serving \(started.count) ring(s), features 0x\(String(features, radix: 16))")
        }
    }

    /// Detaches the TAP from each started ring and stops it.
    func quiesce() throws -> [Int: UInt16] {
        throw SnapshotError.unsupported("\(name) is an in-kernel vhost-net NIC (snapshots need its rings' state from the kernel, not done yet); use a volt-net-worker NIC")
    }

    func resume(features: UInt64, queues: [Int: VirtqueueConfig], bases: [Int: UInt16]) throws {
        throw SnapshotError.unsupported("\(name) is an in-kernel vhost-net NIC")
    }

    func reset() throws {
        started.withLock { stop(&$0) }
    }

    /// Best effort over every ring, so one failing ring does not leave the others running.
    private func stop(_ started: inout [Int]) {
        for index in started {
            do {
                try device.setBackend(index, tapFD: -1)
                _ = try device.getVringBase(index)
            } catch {
                logger.error("\(name): stopping vhost-net ring \(index): \(error)")
            }
        }
        started = []
    }
}
