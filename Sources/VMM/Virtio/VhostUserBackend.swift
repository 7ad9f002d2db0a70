import CShim
import Glibc
import IPC
import Logging
import Synchronization
import SystemPackage
import VirtioCore

/// A virtio device served by a vhost-user backend in another process (our worker, or
/// anyone's: qemu-storage-daemon, DPDK...). The VMM keeps only setup and config space:
/// each queue's notify address is an ioeventfd handed to the backend as its kick fd,
/// and one call eventfd per device is an irqfd on the device's interrupt line.
///
/// A backend volt-vmm spawned can be replaced while the VM runs (`reconnect`): the
/// session state (acked features, started rings, inflight buffer) is kept here and
/// replayed on the new connection; kick and call eventfds stay registered in KVM.
final class VhostUserBackend: VirtioDeviceBackend, @unchecked Sendable {
    /// Protocol features volt-vmm uses when the backend offers them.
    static let wantedProtocolFeatures = UInt64.protocolFeatures(.mq, .replyAck, .config)
    /// Also wanted from workers volt-vmm restarts: inflight I/O tracking.
    static let restartProtocolFeatures = UInt64.protocolFeatures(.inflightShmfd)
    static let defaultQueueSize: UInt16 = 256

    let name: String
    let deviceType: UInt32
    let offeredFeatures: UInt64
    let queueMaxSizes: [UInt16]
    /// The socket to the backend, for the supervisor to watch for hang-ups.
    var socketFD: Int32 { session.withLock { $0.frontend.connection.socket.rawValue } }

    private let backendFeatures: UInt64
    private let usesProtocolFeatures: Bool
    private let protocolFeatures: UInt64
    private let memory: GuestMemory
    private let logger: Logger
    private let notifiers: QueueNotifiers
    private var kickFDs: [OwnedFD] { notifiers.kickFDs }
    private var callFD: OwnedFD { notifiers.callFD }

    /// What a new backend must be told to continue where the last one stopped.
    private struct Session {
        var frontend: Frontend
        /// Acked virtio features, once the driver set DRIVER_OK.
        var features: UInt64?
        /// Rings handed to the backend at DRIVER_OK.
        var started: [Int: VirtqueueConfig] = [:]
        /// GET_INFLIGHT_FD's reply and buffer, sent back with SET_INFLIGHT_FD.
        var inflight: (InflightDescription, OwnedFD)?
        /// The backend died and is not replaced yet.
        var down = false
        var warnedWhileDown = false
        /// Config space as last read, for reads while the backend is down.
        var config: [UInt8] = []
    }
    /// One request at a time on the socket: config reads come from any vCPU thread.
    private let session: Mutex<Session>

    /// Connects and negotiates with a backend, and wires its queues' notify and
    /// interrupt eventfds into KVM for the transport window at `mmioBase` / `irq`.
    init(name: String, frontend: Frontend, deviceType: UInt32, defaultQueues: Int, memory: GuestMemory,
         vm: VirtualMachine, mmioBase: UInt64, irq: UInt32, restartable: Bool = false, logger: Logger) throws {
        self.name = name
        self.deviceType = deviceType
        self.memory = memory
        self.logger = logger
        let wanted = Self.wantedProtocolFeatures | (restartable ? Self.restartProtocolFeatures : 0)
        let handshake = try Self.handshake(name, frontend, wanted: wanted, defaultQueues: defaultQueues)
        backendFeatures = handshake.features
        usesProtocolFeatures = handshake.features & VirtioFeature.protocolFeatures != 0
        protocolFeatures = handshake.protocolFeatures
        // The guest negotiates virtio features only; packed rings are not supported by our transport.
        offeredFeatures = handshake.features & ~(VirtioFeature.protocolFeatures | VirtioFeature.ringPacked)
        queueMaxSizes = Array(repeating: Self.defaultQueueSize, count: handshake.queues)
        session = Mutex(Session(frontend: frontend))
        notifiers = try QueueNotifiers(vm: vm, mmioBase: mmioBase, irq: irq, queues: queueMaxSizes.count)
    }

    private struct Handshake {
        var features: UInt64
        var protocolFeatures: UInt64
        var queues: Int
    }

    /// GET_FEATURES, GET/SET_PROTOCOL_FEATURES, SET_OWNER, GET_QUEUE_NUM.
    private static func handshake(_ name: String, _ frontend: Frontend, wanted: UInt64, defaultQueues: Int) throws -> Handshake {
        do {
            let features = try frontend.getFeatures()
            guard features & VirtioFeature.version1 != 0 else {
                throw DeviceError.noVersion1(device: name)
            }
            var acked: UInt64 = 0
            if features & VirtioFeature.protocolFeatures != 0 {
                acked = try frontend.getProtocolFeatures() & wanted
                try frontend.setProtocolFeatures(acked)
            }
            try frontend.setOwner()
            var queues = defaultQueues
            if acked & ProtocolFeature.mq.mask != 0 {
                queues = Int(clamping: try frontend.getQueueNum())
            }
            guard (1...64).contains(queues) else {
                throw DeviceError.queueCountOutOfRange(device: name, queues: queues)
            }
            return Handshake(features: features, protocolFeatures: acked, queues: queues)
        } catch let error as VhostUserError {
            throw DeviceError.handshakeFailed(device: name, error)
        }
    }

    /// Shuts the socket down so any call blocked on it returns (used when the VM stops).
    func disconnect() {
        session.withLock { $0.frontend.connection.shutdown() }
    }

    func readConfig(offset: UInt32, size: UInt32) throws -> [UInt8] {
        guard protocolFeatures & ProtocolFeature.config.mask != 0 else { return Array(repeating: 0, count: Int(size)) }
        guard offset + size <= UInt32(VhostUser.maxConfigSize) else { return Array(repeating: 0xff, count: Int(size)) }
        return try session.withLock { s in
            if !s.down {
                do {
                    // Read from offset 0: libvhost-user backends ignore the offset field.
                    let bytes = try s.frontend.getConfig(offset: 0, size: offset + size)
                    if bytes.count > s.config.count { s.config = bytes }
                    else { s.config.replaceSubrange(0..<bytes.count, with: bytes) }
                    return Array(bytes.dropFirst(Int(offset)))
                } catch let error as VhostUserError where isConnectionLoss(error) {
                    s.down = true
                }
            }
            // The backend is gone (a restart is on its way): never block the vCPU on it.
            if !s.warnedWhileDown {
                logger.warning("\(name): config read while the device backend is down: answering from the last known config space")
                s.warnedWhileDown = true
            }
            let end = Int(offset + size)
            guard s.config.count >= end else { return Array(repeating: 0xff, count: Int(size)) }
            return Array(s.config[Int(offset)..<end])
        }
    }

    func writeConfig(offset: UInt32, data: [UInt8]) throws {
        guard protocolFeatures & ProtocolFeature.config.mask != 0 else { return }
        try session.withLock { s in
            guard !s.down else {
                logger.warning("\(name): config write at \(offset) dropped: the device backend is down")
                return
            }
            try s.frontend.setConfig(offset: offset, data: data)
        }
    }

    func activate(features: UInt64, queues: [Int: VirtqueueConfig]) throws {
        try session.withLock { s in
            s.features = features
            s.started = queues
            // A backend that is down gets all of this when it is replaced.
            guard !s.down else { return }
            do {
                try s.frontend.setFeatures(features | (usesProtocolFeatures ? VirtioFeature.protocolFeatures : 0))
                try sendMemoryTable(s.frontend)
                if protocolFeatures & ProtocolFeature.inflightShmfd.mask != 0 {
                    // A fresh buffer per driver session (the spec: a new one on VM reset).
                    let (description, fd) = try s.frontend.getInflightFd(numQueues: UInt16(queueMaxSizes.count),
                                                                         queueSize: Self.defaultQueueSize)
                    s.inflight = (description, fd)
                }
                for (index, q) in queues.sorted(by: { $0.key < $1.key }) {
                    try startRing(s.frontend, index, q, base: 0)
                }
            } catch let error as VhostUserError {
                if protocolFeatures & Self.restartProtocolFeatures != 0, isConnectionLoss(error) {
                    // The worker died under us: the supervisor restarts it and replays this.
                    logger.warning("\(name): backend lost during DRIVER_OK setup (\(error)); it is replayed after the restart")
                    s.down = true
                    return
                }
                throw DeviceError.activationFailed(device: name, error)
            }
        }
    }

    private func startRing(_ frontend: Frontend, _ index: Int, _ q: VirtqueueConfig, base: UInt16) throws {
        try frontend.setVringNum(index: index, num: q.size)
        let ring = try q.hostAddresses(in: memory)
        try frontend.setVringAddr(VringAddress(index: UInt32(index), flags: 0, descriptorTable: ring.descriptors,
                                               usedRing: ring.used, availableRing: ring.available, logGuestAddress: 0))
        try frontend.setVringBase(index: index, base: base)
        try frontend.setVringCall(index: index, fd: callFD.descriptor)
        try frontend.setVringKick(index: index, fd: kickFDs[index].descriptor)
        if usesProtocolFeatures {
            try frontend.setVringEnable(index: index, enabled: true)
        }
    }

    /// Stops every started ring (GET_VRING_BASE) so the backend holds no driver state.
    func reset() throws {
        try session.withLock { s in
            let started = s.started.keys.sorted()
            s.started = [:]
            s.features = nil
            s.inflight = nil
            guard !s.down else { return }
            for index in started {
                if usesProtocolFeatures { try s.frontend.setVringEnable(index: index, enabled: false) }
                _ = try s.frontend.getVringBase(index: index)
            }
        }
    }

    func quiesce() throws -> [Int: UInt16] {
        try session.withLock { s in
            guard !s.down else { throw SnapshotError.failed("\(name): its backend is down (being restarted); try again") }
            var bases: [Int: UInt16] = [:]
            do {
                for index in s.started.keys.sorted() {
                    if usesProtocolFeatures { try s.frontend.setVringEnable(index: index, enabled: false) }
                    bases[index] = try s.frontend.getVringBase(index: index)
                }
            } catch let error as VhostUserError {
                throw SnapshotError.failed("\(name): stopping its rings: \(error)")
            }
            return bases
        }
    }

    /// After a snapshot the same backend gets its rings back; on restore a fresh one gets
    /// the DRIVER_OK setup first (features, memory table, a new inflight buffer).
    func resume(features: UInt64, queues: [Int: VirtqueueConfig], bases: [Int: UInt16]) throws {
        try session.withLock { s in
            do {
                if s.features == nil {
                    s.features = features
                    s.started = queues
                    try s.frontend.setFeatures(features | (usesProtocolFeatures ? VirtioFeature.protocolFeatures : 0))
                    try sendMemoryTable(s.frontend)
                    if protocolFeatures & ProtocolFeature.inflightShmfd.mask != 0 {
                        s.inflight = try s.frontend.getInflightFd(numQueues: UInt16(queueMaxSizes.count), queueSize: Self.defaultQueueSize)
                    }
                }
                for (index, q) in queues.sorted(by: { $0.key < $1.key }) {
                    try startRing(s.frontend, index, q, base: bases[index] ?? 0)
                    var one: UInt64 = 1
                    _ = write(kickFDs[index].rawValue, &one, 8)
                }
            } catch let error as VhostUserError {
                throw DeviceError.activationFailed(device: name, error)
            }
        }
    }

    /// The backend died: answer config reads from the cache until `reconnect`.
    func markDown() {
        session.withLock { s in
            s.down = true
            s.frontend.connection.shutdown()
        }
    }

    /// Continues the device on a new backend (a respawned worker): handshake, then the
    /// DRIVER_OK state replayed — features, memory table, inflight buffer, and each
    /// started ring with its base at the used index the guest sees, the same call and
    /// kick eventfds — and finally a kick on every ring so it looks at what is waiting.
    func reconnect(_ frontend: Frontend) throws {
        let wanted = protocolFeatures
        let handshake = try Self.handshake(name, frontend, wanted: wanted, defaultQueues: queueMaxSizes.count)
        guard handshake.features == backendFeatures, handshake.protocolFeatures == protocolFeatures,
              handshake.queues == queueMaxSizes.count else {
            throw DeviceError.restartedBackendDiffers(device: name, features: handshake.features, queues: handshake.queues)
        }
        try session.withLock { s in
            do {
                if let features = s.features {
                    try frontend.setFeatures(features | (usesProtocolFeatures ? VirtioFeature.protocolFeatures : 0))
                    try sendMemoryTable(frontend)
                    if let (description, fd) = s.inflight {
                        try frontend.setInflightFd(description, fd: fd.descriptor)
                    }
                    for (index, q) in s.started.sorted(by: { $0.key < $1.key }) {
                        // The vring base from the used index: everything before it was
                        // completed; the backend resubmits what its inflight buffer holds.
                        let usedIndex = try memory.readValue(UInt16.self, at: q.usedRing + 2)
                        try startRing(frontend, index, q, base: usedIndex)
                    }
                }
            } catch let error as VhostUserError {
                throw DeviceError.replayFailed(device: name, error)
            }
            s.frontend = frontend
            s.down = false
            s.warnedWhileDown = false
            for index in s.started.keys {
                var one: UInt64 = 1
                _ = write(kickFDs[index].rawValue, &one, 8)
            }
        }
    }

    private func isConnectionLoss(_ error: VhostUserError) -> Bool {
        switch error {
        case .disconnected, .system: return true
        default: return false
        }
    }

    private func sendMemoryTable(_ frontend: Frontend) throws {
        let table = memory.map.descriptors
        try frontend.setMemTable(table.map {
            MemoryRegion(guestAddress: $0.guestAddress.rawValue, size: $0.size, userAddress: $0.userAddress, mmapOffset: $0.mmapOffset)
        }, fds: table.map(\.fd))
    }
}
