import SystemPackage
import VirtioCore

/// Drives one front-end connection for a `VhostUserDevice`: reads, validates, keeps the
/// protocol state machine and calls the device. Any violation ends `run()` with a typed
/// error before device state is touched. Never maps memory itself.
public final class BackendRequestHandler {
    /// Protocol features this handler implements.
    public static let supportedProtocolFeatures: UInt64 =
        .protocolFeatures(.mq, .replyAck, .config, .inflightShmfd, .resetDevice)
    /// VIRTIO_F_RING_PACKED: never offered, only split rings are handled.
    static let ringPackedFeature = VirtioFeature.ringPacked

    private struct Ring {
        var size: UInt16?
        var address: VringAddress?
        var base: UInt16 = 0
        /// SET_VRING_KICK received since the last stop: the spec's "started".
        var kicked = false
        var enabled = false
        /// `configureQueue` called since the last stop.
        var configured = false
        /// `startQueue` called and not disabled or stopped since.
        var running = false
    }

    public let connection: Connection
    public let device: any VhostUserDevice
    private var owner = false
    private var ackedFeatures: UInt64?
    private var ackedProtocolFeatures: UInt64 = 0
    private var memoryTableSet = false
    private var rings: [Ring]
    /// Called with each decoded request before it is handled (worker test hooks).
    public var willHandle: ((Request) -> Void)?

    public init(connection: Connection, device: any VhostUserDevice) {
        self.connection = connection
        self.device = device
        rings = Array(repeating: Ring(), count: max(0, min(device.queueCount, 256)))
    }

    /// Virtio features offered in GET_FEATURES.
    public var offeredFeatures: UInt64 {
        (device.deviceFeatures & ~(VhostUser.protocolFeaturesBit | Self.ringPackedFeature)) | VhostUser.protocolFeaturesBit
    }

    /// Protocol features offered in GET_PROTOCOL_FEATURES.
    public var offeredProtocolFeatures: UInt64 { device.protocolFeatures & Self.supportedProtocolFeatures }

    /// Serves requests until the front-end disconnects (returns) or a message is refused (throws).
    public func run() throws(VhostUserError) {
        while try handleNext() {}
    }

    /// Handles one request. Returns false when the front-end has disconnected.
    public func handleNext() throws(VhostUserError) -> Bool {
        let received: ReceivedMessage
        do { received = try connection.receive() } catch .disconnected { return false }
        let header = received.header
        let known = Request(rawValue: header.request)
        let wantsAck = header.needsReply && negotiated(.replyAck) && !(known?.hasInherentReply ?? false)
        do {
            let message = try FrontendMessage.decode(header: header, payload: received.payload, fdCount: received.fds.count)
            willHandle?(message.request)
            try dispatch(message, fds: received.fds)
        } catch {
            // Best effort: tell the front-end before the connection goes away.
            if wantsAck, let known { try? sendReply(known, payload: encodeU64(1)) }
            throw error
        }
        if wantsAck, let known { try sendReply(known, payload: encodeU64(0)) }
        return true
    }

    // MARK: - Dispatch

    private func dispatch(_ message: FrontendMessage, fds: [OwnedFD]) throws(VhostUserError) {
        let request = message.request
        switch message {
        case .getFeatures:
            try sendReply(request, payload: encodeU64(offeredFeatures))

        case .setOwner:
            if owner { throw .protocolViolation(request, .ownerAlreadySet) }
            owner = true

        case .resetOwner:
            // Deprecated; the spec recommends ignoring it.
            try requireOwner(request)

        case let .setFeatures(features):
            try requireOwner(request)
            let unoffered = features & ~offeredFeatures
            if unoffered != 0 { throw .protocolViolation(request, .unofferedFeatures(unoffered)) }
            // Without F_PROTOCOL_FEATURES all rings are enabled immediately.
            let enableAll = features & VhostUser.protocolFeaturesBit == 0
            if enableAll {
                for i in rings.indices where rings[i].kicked && !rings[i].running {
                    try checkStartable(i, request, featuresAcked: true)
                }
            }
            try call(request) { try device.setFeatures(features & ~VhostUser.protocolFeaturesBit) }
            ackedFeatures = features
            if enableAll {
                for i in rings.indices {
                    rings[i].enabled = true
                    try startIfReady(i, request)
                }
            }

        case let .setMemTable(table):
            try requireOwner(request)
            let regions = zip(table.regions, fds).map { MemoryRegionDescriptor(region: $0, fd: $1) }
            try call(request) { try device.setMemoryTable(regions) }
            memoryTableSet = true

        case let .setVringNum(state):
            try requireOwner(request)
            let i = try ringIndex(state.index, request)
            try requireStopped(i, request)
            let num = state.num
            guard num >= 1, num <= UInt32(device.maxQueueSize), num <= 32768, num & (num - 1) == 0 else {
                throw .invalidMessage(request, .vringNumInvalid(num, max: device.maxQueueSize))
            }
            rings[i].size = UInt16(num)

        case let .setVringAddr(address):
            try requireOwner(request)
            let i = try ringIndex(address.index, request)
            if address.flags & VringAddress.logFlag != 0 { throw .invalidMessage(request, .loggingUnsupported) }
            if rings[i].kicked {
                // Allowed on a started ring only as a no-op (the spec lets the front-end
                // flip logging on the fly; we support no logging).
                guard rings[i].address == address else { throw .protocolViolation(request, .ringAddressChangedWhileStarted(i)) }
            }
            rings[i].address = address

        case let .setVringBase(state):
            try requireOwner(request)
            let i = try ringIndex(state.index, request)
            try requireStopped(i, request)
            // Split ring: bits 0-15 next avail index, bits 16-31 reserved.
            guard state.num <= UInt32(UInt16.max) else { throw .invalidMessage(request, .vringBaseOutOfRange(state.num)) }
            rings[i].base = UInt16(state.num)

        case let .getVringBase(state):
            try requireOwner(request)
            let i = try ringIndex(state.index, request)
            var base = rings[i].base
            if rings[i].configured {
                base = try call(request) { try device.stopQueue(i) }
            }
            rings[i].kicked = false
            rings[i].running = false
            rings[i].configured = false
            rings[i].base = base
            try sendReply(request, payload: VringState(index: state.index, num: UInt32(base)).encode())

        case let .setVringKick(p):
            try requireOwner(request)
            let i = try ringIndex(UInt32(p.index), request)
            if rings[i].enabled && !rings[i].running { try checkStartable(i, request) }
            try call(request) { try device.setQueueKick(i, fd: fds.first) }
            rings[i].kicked = true
            try startIfReady(i, request)

        case let .setVringCall(p):
            try requireOwner(request)
            let i = try ringIndex(UInt32(p.index), request)
            try call(request) { try device.setQueueCall(i, fd: fds.first) }

        case let .setVringErr(p):
            try requireOwner(request)
            let i = try ringIndex(UInt32(p.index), request)
            try call(request) { try device.setQueueErr(i, fd: fds.first) }

        case .getProtocolFeatures:
            try requireProtocolFeaturesBit(request)
            try sendReply(request, payload: encodeU64(offeredProtocolFeatures))

        case let .setProtocolFeatures(features):
            try requireProtocolFeaturesBit(request)
            let unoffered = features & ~offeredProtocolFeatures
            if unoffered != 0 { throw .protocolViolation(request, .unofferedProtocolFeatures(unoffered)) }
            ackedProtocolFeatures = features

        case .getQueueNum:
            // Legal once MQ is among the queried protocol features.
            guard offeredProtocolFeatures & ProtocolFeature.mq.mask != 0 else {
                throw .protocolViolation(request, .protocolFeatureNotNegotiated(.mq))
            }
            try sendReply(request, payload: encodeU64(UInt64(rings.count)))

        case let .setVringEnable(state):
            try requireOwner(request)
            let i = try ringIndex(state.index, request)
            // Only with VHOST_USER_F_PROTOCOL_FEATURES (offered, and acked if SET_FEATURES came).
            if let acked = ackedFeatures, acked & VhostUser.protocolFeaturesBit == 0 {
                throw .protocolViolation(request, .protocolFeaturesNotNegotiated)
            }
            if state.num == 1 {
                if rings[i].kicked && !rings[i].running { try checkStartable(i, request) }
                rings[i].enabled = true
                try startIfReady(i, request)
            } else {
                if rings[i].running { try call(request) { try device.disableQueue(i) } }
                rings[i].running = false
                rings[i].enabled = false
            }

        case let .getConfig(config):
            try requireNegotiated(.config, request)
            // Failure is reported in-band: a reply with an empty payload (spec, GET_CONFIG).
            if let data = try? device.config(offset: config.offset, size: config.size), data.count == Int(config.size) {
                let reply = DeviceConfig(offset: config.offset, size: config.size, flags: config.flags, data: data)
                try sendReply(request, payload: reply.encode())
            } else {
                try sendReply(request, payload: [])
            }

        case let .setConfig(config):
            try requireOwner(request)
            try requireNegotiated(.config, request)
            let liveMigration = config.flags == DeviceConfig.liveMigrationFlag
            try call(request) { try device.setConfig(offset: config.offset, data: config.data, liveMigration: liveMigration) }

        case let .getInflightFd(description):
            try requireOwner(request)
            try requireNegotiated(.inflightShmfd, request)
            try checkInflightGeometry(description, request)
            let (reply, fd) = try call(request) { try device.getInflight(description) }
            try sendReply(request, payload: reply.encode(), fds: [fd.descriptor])

        case let .setInflightFd(description):
            try requireOwner(request)
            try requireNegotiated(.inflightShmfd, request)
            try checkInflightGeometry(description, request)
            guard let fd = fds.first else { throw .invalidMessage(request, .wrongFdCount(expected: 1, actual: 0)) }
            try call(request) { try device.setInflight(description, fd: fd) }

        case .resetDevice:
            try requireOwner(request)
            try requireNegotiated(.resetDevice, request)
            device.reset()
            rings = Array(repeating: Ring(), count: rings.count)
            ackedFeatures = nil
            memoryTableSet = false

        case .getMaxMemSlots:
            // Only with CONFIGURE_MEM_SLOTS, which we never offer (no ADD/REM_MEM_REG).
            try requireNegotiated(.configureMemSlots, request)
            try sendReply(request, payload: encodeU64(UInt64(VhostUser.maxMemoryRegions)))
        }
    }

    // MARK: - Ring lifecycle

    /// Starts the ring in the device once it is kicked and enabled.
    private func startIfReady(_ i: Int, _ request: Request) throws(VhostUserError) {
        guard rings[i].kicked, rings[i].enabled, !rings[i].running else { return }
        try checkStartable(i, request)
        if !rings[i].configured {
            guard let size = rings[i].size, let address = rings[i].address else { return }
            let setup = QueueSetup(size: size, descriptorTable: address.descriptorTable,
                                   availableRing: address.availableRing, usedRing: address.usedRing,
                                   nextAvailIndex: rings[i].base)
            try call(request) { try device.configureQueue(i, setup) }
            rings[i].configured = true
        }
        try call(request) { try device.startQueue(i) }
        rings[i].running = true
    }

    private func checkStartable(_ i: Int, _ request: Request, featuresAcked: Bool = false) throws(VhostUserError) {
        if !featuresAcked && ackedFeatures == nil { throw .protocolViolation(request, .featuresNotSet) }
        if !memoryTableSet { throw .protocolViolation(request, .memoryTableNotSet) }
        if rings[i].configured { return }
        if rings[i].size == nil { throw .protocolViolation(request, .ringNotConfigured(i, missing: "SET_VRING_NUM")) }
        if rings[i].address == nil { throw .protocolViolation(request, .ringNotConfigured(i, missing: "SET_VRING_ADDR")) }
    }

    // MARK: - Checks

    private func ringIndex(_ raw: UInt32, _ request: Request) throws(VhostUserError) -> Int {
        guard raw < UInt32(rings.count) else {
            throw .invalidMessage(request, .vringIndexOutOfRange(raw, queueCount: rings.count))
        }
        return Int(raw)
    }

    private func requireStopped(_ i: Int, _ request: Request) throws(VhostUserError) {
        if rings[i].kicked { throw .protocolViolation(request, .ringStarted(i)) }
    }

    private func requireOwner(_ request: Request) throws(VhostUserError) {
        if !owner { throw .protocolViolation(request, .ownerNotSet) }
    }

    private func requireProtocolFeaturesBit(_ request: Request) throws(VhostUserError) {
        if offeredFeatures & VhostUser.protocolFeaturesBit == 0 { throw .protocolViolation(request, .protocolFeaturesNotNegotiated) }
    }

    private func negotiated(_ feature: ProtocolFeature) -> Bool { ackedProtocolFeatures & feature.mask != 0 }

    private func requireNegotiated(_ feature: ProtocolFeature, _ request: Request) throws(VhostUserError) {
        if !negotiated(feature) { throw .protocolViolation(request, .protocolFeatureNotNegotiated(feature)) }
    }

    private func checkInflightGeometry(_ d: InflightDescription, _ request: Request) throws(VhostUserError) {
        guard d.numQueues >= 1, Int(d.numQueues) <= rings.count, d.queueSize >= 1, Int(d.queueSize) <= device.maxQueueSize else {
            throw .invalidMessage(request, .inflightGeometry(numQueues: d.numQueues, queueSize: d.queueSize))
        }
    }

    // MARK: - I/O

    private func sendReply(_ request: Request, payload: [UInt8], fds: [FileDescriptor] = []) throws(VhostUserError) {
        try connection.send(.reply(request, size: payload.count), payload: payload, fds: fds)
    }

    /// Runs a device call, turning any error into `.deviceFailed` naming the request.
    private func call<T>(_ request: Request, _ body: () throws -> T) throws(VhostUserError) -> T {
        do { return try body() } catch { throw .deviceFailed(request, String(describing: error)) }
    }
}
