import CShim
import Glibc
import IPC
import Logging
import Synchronization
import SystemPackage

/// A virtio device served by a vhost-user backend in another process (our worker, or
/// anyone's: qemu-storage-daemon, DPDK...). The VMM keeps only setup and config space:
/// each queue's notify address is an ioeventfd handed to the backend as its kick fd,
/// and one call eventfd per device is an irqfd on the device's interrupt line.
final class VhostUserBackend: VirtioDeviceBackend, @unchecked Sendable {
    static let featureProtocolFeatures: UInt64 = 1 << 30
    static let featureVersion1: UInt64 = 1 << 32
    static let featureRingPacked: UInt64 = 1 << 34
    /// Protocol features volt-vmm uses when the backend offers them.
    static let wantedProtocolFeatures = UInt64.protocolFeatures(.mq, .replyAck, .config)
    static let defaultQueueSize: UInt16 = 256

    let name: String
    let deviceType: UInt32
    let offeredFeatures: UInt64
    let queueMaxSizes: [UInt16]
    /// The socket to the backend, for the supervisor to watch for hang-ups.
    var socketFD: Int32 { frontend.connection.socket.rawValue }

    private let frontend: Frontend
    private let usesProtocolFeatures: Bool
    private let protocolFeatures: UInt64
    private let memory: GuestMemory
    private let kickFDs: [OwnedFD]
    private let callFD: OwnedFD
    /// One request at a time on the socket: config reads come from any vCPU thread.
    private let lock = Mutex<[Int]>([])   // started queue indices

    /// Connects and negotiates with a backend, and wires its queues' notify and
    /// interrupt eventfds into KVM for the transport window at `mmioBase` / `irq`.
    init(name: String, frontend: Frontend, deviceType: UInt32, defaultQueues: Int, memory: GuestMemory,
         vm: VirtualMachine, mmioBase: UInt64, irq: UInt32) throws {
        self.name = name
        self.frontend = frontend
        self.deviceType = deviceType
        self.memory = memory
        do {
            let features = try frontend.getFeatures()
            guard features & Self.featureVersion1 != 0 else {
                throw RunError.system("\(name): the vhost-user backend does not offer VIRTIO_F_VERSION_1; volt-vmm drives modern virtio only")
            }
            usesProtocolFeatures = features & Self.featureProtocolFeatures != 0
            var acked: UInt64 = 0
            if usesProtocolFeatures {
                acked = try frontend.getProtocolFeatures() & Self.wantedProtocolFeatures
                try frontend.setProtocolFeatures(acked)
            }
            protocolFeatures = acked
            try frontend.setOwner()
            var queues = defaultQueues
            if acked & ProtocolFeature.mq.mask != 0 {
                queues = Int(clamping: try frontend.getQueueNum())
            }
            guard (1...64).contains(queues) else {
                throw RunError.system("\(name): the backend reports \(queues) queues; expected 1 to 64")
            }
            // The guest negotiates virtio features only; packed rings are not supported by our transport.
            offeredFeatures = features & ~(Self.featureProtocolFeatures | Self.featureRingPacked)
            queueMaxSizes = Array(repeating: Self.defaultQueueSize, count: queues)
        } catch let error as VhostUserError {
            throw RunError.system("\(name): vhost-user handshake failed: \(error)")
        }
        kickFDs = try (0..<queueMaxSizes.count).map { index in
            let fd = try Self.eventFD()
            try vm.addIoeventfd(address: mmioBase + VirtioMMIOTransport.Register.queueNotify,
                                datamatch: UInt32(index), eventFD: fd.rawValue)
            return fd
        }
        callFD = try Self.eventFD()
        try vm.addIrqfd(gsi: irq, eventFD: callFD.rawValue)
    }

    /// Shuts the socket down so any call blocked on it returns (used when the VM stops).
    func disconnect() {
        frontend.connection.shutdown()
    }

    private static func eventFD() throws -> OwnedFD {
        let fd = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        guard fd >= 0 else { throw RunError.system("eventfd: \(Errno(rawValue: -fd))") }
        return OwnedFD(taking: fd)
    }

    func readConfig(offset: UInt32, size: UInt32) throws -> [UInt8] {
        guard protocolFeatures & ProtocolFeature.config.mask != 0 else { return Array(repeating: 0, count: Int(size)) }
        guard offset + size <= UInt32(VhostUser.maxConfigSize) else { return Array(repeating: 0xff, count: Int(size)) }
        // Read from offset 0: libvhost-user backends ignore the offset field.
        let bytes = try lock.withLock { _ in try frontend.getConfig(offset: 0, size: offset + size) }
        return Array(bytes.dropFirst(Int(offset)))
    }

    func writeConfig(offset: UInt32, data: [UInt8]) throws {
        guard protocolFeatures & ProtocolFeature.config.mask != 0 else { return }
        try lock.withLock { _ in try frontend.setConfig(offset: offset, data: data) }
    }

    func activate(features: UInt64, queues: [Int: VirtqueueConfig]) throws {
        try lock.withLock { started in
            do {
                try frontend.setFeatures(features | (usesProtocolFeatures ? Self.featureProtocolFeatures : 0))
                try sendMemoryTable()
                for (index, q) in queues.sorted(by: { $0.key < $1.key }) {
                    try frontend.setVringNum(index: index, num: q.size)
                    try frontend.setVringAddr(VringAddress(
                        index: UInt32(index), flags: 0,
                        descriptorTable: try hostAddress(q.descriptorTable, 16 * UInt64(q.size)),
                        usedRing: try hostAddress(q.usedRing, 6 + 8 * UInt64(q.size)),
                        availableRing: try hostAddress(q.availableRing, 6 + 2 * UInt64(q.size)),
                        logGuestAddress: 0))
                    try frontend.setVringBase(index: index, base: 0)
                    try frontend.setVringCall(index: index, fd: callFD.descriptor)
                    try frontend.setVringKick(index: index, fd: kickFDs[index].descriptor)
                    if usesProtocolFeatures {
                        try frontend.setVringEnable(index: index, enabled: true)
                    }
                    started.append(index)
                }
            } catch let error as VhostUserError {
                throw RunError.system("\(name): vhost-user setup at DRIVER_OK failed: \(error)")
            }
        }
    }

    /// Stops every started ring (GET_VRING_BASE) so the backend holds no driver state.
    func reset() throws {
        try lock.withLock { started in
            defer { started.removeAll() }
            for index in started {
                if usesProtocolFeatures { try frontend.setVringEnable(index: index, enabled: false) }
                _ = try frontend.getVringBase(index: index)
            }
        }
    }

    private func sendMemoryTable() throws {
        let regions = memory.regions.map { region in
            MemoryRegion(guestAddress: region.guestBase, size: region.size,
                         userAddress: memory.hostAddress(of: region), mmapOffset: region.fileOffset)
        }
        try frontend.setMemTable(regions, fds: Array(repeating: memory.fd, count: regions.count))
    }

    private func hostAddress(_ guestAddress: UInt64, _ length: UInt64) throws -> UInt64 {
        UInt64(UInt(bitPattern: try memory.pointer(at: guestAddress, length: length)))
    }
}
