import SystemPackage

/// The front-end (VMM) side of one vhost-user connection: typed calls for each request,
/// REPLY_ACK when negotiated, and validation of every reply. One call at a time.
/// fds passed in are borrowed: the kernel duplicates them into the back-end.
public final class Frontend {
    public let connection: Connection
    /// Protocol features acked by the last `setProtocolFeatures`.
    public private(set) var ackedProtocolFeatures: UInt64 = 0

    public init(connection: Connection) { self.connection = connection }

    public static func connect(path: String) throws(VhostUserError) -> Frontend {
        Frontend(connection: try Connection.connect(path: path))
    }

    private var replyAck: Bool { ackedProtocolFeatures & ProtocolFeature.replyAck.mask != 0 }

    // MARK: - Features and session

    public func getFeatures() throws(VhostUserError) -> UInt64 { try getU64(.getFeatures) }

    public func setFeatures(_ features: UInt64) throws(VhostUserError) { try command(.setFeatures, encodeU64(features)) }

    public func getProtocolFeatures() throws(VhostUserError) -> UInt64 { try getU64(.getProtocolFeatures) }

    /// REPLY_ACK, if in `features`, applies from the next request on.
    public func setProtocolFeatures(_ features: UInt64) throws(VhostUserError) {
        try command(.setProtocolFeatures, encodeU64(features))
        ackedProtocolFeatures = features
    }

    public func setOwner() throws(VhostUserError) { try command(.setOwner) }

    /// Deprecated by the spec; back-ends ignore it.
    public func resetOwner() throws(VhostUserError) { try command(.resetOwner) }

    /// Needs RESET_DEVICE negotiated.
    public func resetDevice() throws(VhostUserError) { try command(.resetDevice) }

    /// Needs MQ among the back-end's protocol features.
    public func getQueueNum() throws(VhostUserError) -> UInt64 { try getU64(.getQueueNum) }

    /// Needs CONFIGURE_MEM_SLOTS negotiated.
    public func getMaxMemSlots() throws(VhostUserError) -> UInt64 { try getU64(.getMaxMemSlots) }

    // MARK: - Memory

    /// One fd per region, same order.
    public func setMemTable(_ regions: [MemoryRegion], fds: [FileDescriptor]) throws(VhostUserError) {
        guard regions.count == fds.count, (1...VhostUser.maxMemoryRegions).contains(regions.count) else {
            throw .invalidArgument("\(regions.count) regions with \(fds.count) fds")
        }
        try command(.setMemTable, MemoryTable(regions: regions).encode(), fds: fds)
    }

    // MARK: - Vrings

    public func setVringNum(index: Int, num: UInt16) throws(VhostUserError) {
        try command(.setVringNum, VringState(index: try vring(index), num: UInt32(num)).encode())
    }

    public func setVringAddr(_ address: VringAddress) throws(VhostUserError) {
        try command(.setVringAddr, address.encode())
    }

    /// Split ring: next available-ring index to process.
    public func setVringBase(index: Int, base: UInt16) throws(VhostUserError) {
        try command(.setVringBase, VringState(index: try vring(index), num: UInt32(base)).encode())
    }

    /// Stops the ring; returns the back-end's next available-ring index (split ring).
    public func getVringBase(index: Int) throws(VhostUserError) -> UInt16 {
        let i = try vring(index)
        let reply = try query(.getVringBase, VringState(index: i, num: 0).encode(), size: VringState.size)
        let state: VringState
        do { state = try VringState.decode(from: reply.payload) } catch { throw .invalidReply(.getVringBase, .wrongSize(expected: 8, actual: reply.payload.count)) }
        guard state.index == i else { throw .invalidReply(.getVringBase, .fieldMismatch("index \(state.index)")) }
        guard state.num <= UInt32(UInt16.max) else { throw .invalidReply(.getVringBase, .fieldMismatch("base \(state.num)")) }
        return UInt16(state.num)
    }

    /// nil fd: the back-end polls the ring (no-fd flag).
    public func setVringKick(index: Int, fd: FileDescriptor?) throws(VhostUserError) { try vringFd(.setVringKick, index, fd) }
    /// nil fd: no interrupts; the front-end polls.
    public func setVringCall(index: Int, fd: FileDescriptor?) throws(VhostUserError) { try vringFd(.setVringCall, index, fd) }
    public func setVringErr(index: Int, fd: FileDescriptor?) throws(VhostUserError) { try vringFd(.setVringErr, index, fd) }

    /// Needs VHOST_USER_F_PROTOCOL_FEATURES negotiated.
    public func setVringEnable(index: Int, enabled: Bool) throws(VhostUserError) {
        try command(.setVringEnable, VringState(index: try vring(index), num: enabled ? 1 : 0).encode())
    }

    // MARK: - Config space (CONFIG negotiated)

    public func getConfig(offset: UInt32, size: UInt32, flags: UInt32 = 0) throws(VhostUserError) -> [UInt8] {
        let request = DeviceConfig(offset: offset, size: size, flags: flags, data: [UInt8](repeating: 0, count: Int(min(size, 4096))))
        do { try request.validate() } catch { throw .invalidMessage(.getConfig, error) }
        let reply = try query(.getConfig, request.encode(), size: nil)
        // An empty payload is the back-end's way to report failure.
        if reply.payload.isEmpty { throw .backendRejected(.getConfig, 1) }
        let config: DeviceConfig
        do { config = try DeviceConfig.decode(from: reply.payload) } catch {
            throw .invalidReply(.getConfig, .wrongSize(expected: request.encode().count, actual: reply.payload.count))
        }
        guard config.offset == offset, config.size == size else {
            throw .invalidReply(.getConfig, .fieldMismatch("offset \(config.offset) size \(config.size)"))
        }
        return config.data
    }

    public func setConfig(offset: UInt32, data: [UInt8], flags: UInt32 = 0) throws(VhostUserError) {
        let config = DeviceConfig(offset: offset, size: UInt32(truncatingIfNeeded: data.count), flags: flags, data: data)
        do { try config.validate() } catch { throw .invalidMessage(.setConfig, error) }
        try command(.setConfig, config.encode())
    }

    // MARK: - Inflight tracking (INFLIGHT_SHMFD negotiated)

    public func getInflightFd(numQueues: UInt16, queueSize: UInt16) throws(VhostUserError) -> (InflightDescription, OwnedFD) {
        let request = InflightDescription(numQueues: numQueues, queueSize: queueSize)
        let reply = try query(.getInflightFd, request.encode(), size: InflightDescription.size, fds: 1)
        let description: InflightDescription
        do { description = try InflightDescription.decode(from: reply.payload) } catch {
            throw .invalidReply(.getInflightFd, .wrongSize(expected: InflightDescription.size, actual: reply.payload.count))
        }
        return (description, reply.fds[0])
    }

    public func setInflightFd(_ description: InflightDescription, fd: FileDescriptor) throws(VhostUserError) {
        try command(.setInflightFd, description.encode(), fds: [fd])
    }

    // MARK: - Plumbing

    private func vring(_ index: Int) throws(VhostUserError) -> UInt32 {
        guard (0...255).contains(index) else { throw .invalidArgument("vring index \(index)") }
        return UInt32(index)
    }

    private func vringFd(_ request: Request, _ index: Int, _ fd: FileDescriptor?) throws(VhostUserError) {
        let payload = VringFdPayload(index: UInt8(try vring(index)), noFd: fd == nil)
        try command(request, payload.encode(), fds: fd.map { [$0] } ?? [])
    }

    private func getU64(_ request: Request) throws(VhostUserError) -> UInt64 {
        let reply = try query(request, [], size: 8)
        do { return try decodeU64(reply.payload) } catch { throw .invalidReply(request, .wrongSize(expected: 8, actual: reply.payload.count)) }
    }

    /// A request without an inherent reply; waits for the ack when REPLY_ACK is negotiated.
    private func command(_ request: Request, _ payload: [UInt8] = [], fds: [FileDescriptor] = []) throws(VhostUserError) {
        let ack = replyAck
        try connection.send(.request(request, size: payload.count, needReply: ack), payload: payload, fds: fds)
        guard ack else { return }
        let reply = try receiveReply(request, size: 8, fds: 0)
        let status: UInt64
        do { status = try decodeU64(reply.payload) } catch { throw .invalidReply(request, .wrongSize(expected: 8, actual: reply.payload.count)) }
        if status != 0 { throw .backendRejected(request, status) }
    }

    /// A request with an inherent reply of `size` bytes (nil: checked by the caller).
    private func query(_ request: Request, _ payload: [UInt8], size: Int?, fds: Int = 0) throws(VhostUserError) -> ReceivedMessage {
        try connection.send(.request(request, size: payload.count), payload: payload)
        return try receiveReply(request, size: size, fds: fds)
    }

    private func receiveReply(_ request: Request, size: Int?, fds: Int) throws(VhostUserError) -> ReceivedMessage {
        let reply = try connection.receive()
        let h = reply.header
        if h.version != VhostUser.version { throw .invalidReply(request, .badVersion(h.version)) }
        if !h.isReply { throw .invalidReply(request, .replyFlagMissing) }
        if h.request != request.rawValue { throw .invalidReply(request, .wrongRequest(h.request)) }
        if let size, reply.payload.count != size { throw .invalidReply(request, .wrongSize(expected: size, actual: reply.payload.count)) }
        if reply.fds.count != fds { throw .invalidReply(request, .wrongFdCount(expected: fds, actual: reply.fds.count)) }
        return reply
    }
}
