import IPC
import SystemPackage
import VirtioCore

/// A host-side vhost-user frontend that plays both the VMM and the guest driver, so a
/// device back-end can be tested or benchmarked without a VM.
///
/// It owns guest RAM (a memfd), every ring, and each queue's kick and call eventfds.
/// `start()` runs the handshake QEMU runs; then `submit` / `kick` / `waitForUsed`
/// drive split virtqueues. One thread at a time: nothing here is locked.
public final class VhostUserTestFrontend {
    public let frontend: Frontend
    public let options: TestFrontendOptions
    /// Guest RAM as the frontend sees it; what SET_MEM_TABLE describes.
    public let memory: MemoryMap

    /// GET_FEATURES as the back-end answered it.
    public private(set) var offeredFeatures: UInt64 = 0
    /// What SET_FEATURES sent (including VHOST_USER_F_PROTOCOL_FEATURES when offered).
    public private(set) var ackedFeatures: UInt64 = 0
    public private(set) var offeredProtocolFeatures: UInt64 = 0
    /// What SET_PROTOCOL_FEATURES sent (0 if the back-end has no protocol features).
    public private(set) var protocolFeatures: UInt64 = 0
    /// GET_QUEUE_NUM (nil when MQ was not negotiated).
    public private(set) var backendQueueCount: Int?
    /// The shared inflight area, kept open while the session lives (INFLIGHT_SHMFD).
    public private(set) var inflight: (description: InflightDescription, fd: OwnedFD)?

    var allocator: GuestBufferAllocator
    var queues: [DrivenQueue] = []

    /// Each queue's rings take this many bytes at the bottom of guest memory.
    static func ringStride(_ size: UInt16) -> UInt64 {
        let used = (SplitRingLayout.descriptorTableSize(size) + SplitRingLayout.availableRingSize(size) + 3) & ~3
        return (used + SplitRingLayout.usedRingSize(size) + 4095) & ~4095
    }

    /// Wraps an already-connected socket. Creates guest memory and lays out the rings;
    /// nothing is sent until `start()`.
    public init(connection: Connection, options: TestFrontendOptions = TestFrontendOptions()) throws(TestFrontendError) {
        let size = options.queueSize
        guard size > 0, size & (size &- 1) == 0, UInt32(size) <= Virtqueue.maxSize else {
            throw .invalidArgument("queue size \(size) is not a power of two up to \(Virtqueue.maxSize)")
        }
        guard (1...256).contains(options.queueCount) else { throw .invalidArgument("queue count \(options.queueCount)") }
        let ringBytes = Self.ringStride(size) * UInt64(options.queueCount)
        guard options.memorySize > ringBytes else {
            throw .invalidArgument("\(options.memorySize) bytes of memory leave no room after \(ringBytes) of rings")
        }
        frontend = Frontend(connection: connection)
        self.options = options
        do {
            let file = try GuestMemoryFile(size: options.memorySize, name: "volt-test-frontend")
            memory = try MemoryMap(frontend: file, regions: [
                FrontendRegion(guestAddress: GuestAddress(0), size: options.memorySize, fileOffset: 0),
            ])
        } catch { throw .memory(error) }
        allocator = GuestBufferAllocator(start: GuestAddress(ringBytes), size: options.memorySize - ringBytes)
    }

    /// Connects to a back-end listening on `socketPath`.
    public convenience init(socketPath: String, options: TestFrontendOptions = TestFrontendOptions()) throws(TestFrontendError) {
        let connection: Connection
        do { connection = try Connection.connect(path: socketPath) } catch { throw .vhostUser(error) }
        try self.init(connection: connection, options: options)
    }

    public var connection: Connection { frontend.connection }

    /// Features both sides agreed on (what a guest driver would see), without the vhost-user bit.
    public var negotiatedFeatures: UInt64 { ackedFeatures & ~VirtioFeature.protocolFeatures }
    public var eventIdx: Bool { ackedFeatures & VirtioFeature.eventIdx != 0 }
    public var indirectDescriptors: Bool { ackedFeatures & VirtioFeature.indirectDescriptors != 0 }
    public var queueCount: Int { options.queueCount }

    public func hasProtocolFeature(_ feature: ProtocolFeature) -> Bool { protocolFeatures & feature.mask != 0 }

    // MARK: - Handshake

    /// The full session setup, in QEMU's order: features and protocol features, owner,
    /// queue count, SET_FEATURES, SET_MEM_TABLE, the inflight area if negotiated, then
    /// per queue NUM, ADDR, BASE, CALL, KICK and ENABLE.
    public func start() throws(TestFrontendError) {
        do {
            offeredFeatures = try frontend.getFeatures()
            let hasProtocolFeatures = offeredFeatures & VirtioFeature.protocolFeatures != 0
            if hasProtocolFeatures {
                offeredProtocolFeatures = try frontend.getProtocolFeatures()
                protocolFeatures = offeredProtocolFeatures & options.protocolFeatures
                try frontend.setProtocolFeatures(protocolFeatures)
            }
            try frontend.setOwner()
            if hasProtocolFeature(.mq) {
                let count = Int(clamping: try frontend.getQueueNum())
                backendQueueCount = count
                guard options.queueCount <= count else {
                    throw TestFrontendError.unsupported("back-end has \(count) queues, \(options.queueCount) requested")
                }
            }
            var wanted = options.features & ~(VirtioFeature.unsupportedByTestFrontend | VirtioFeature.eventIdx)
            if options.eventIdx { wanted |= VirtioFeature.eventIdx }
            ackedFeatures = offeredFeatures & (wanted | VirtioFeature.protocolFeatures)
            try frontend.setFeatures(ackedFeatures)
            try sendMemoryTable()
            if hasProtocolFeature(.inflightShmfd) {
                let (description, fd) = try frontend.getInflightFd(numQueues: UInt16(options.queueCount), queueSize: options.queueSize)
                try frontend.setInflightFd(description, fd: fd.descriptor)
                inflight = (description, fd)
            }
            for index in 0..<options.queueCount { try startQueue(index, enable: hasProtocolFeatures) }
        } catch let error as TestFrontendError {
            throw error
        } catch let error as VhostUserError {
            throw .vhostUser(error)
        } catch let error as MemoryMapError {
            throw .memory(error)
        } catch {
            throw .system(operation: "handshake: \(error)", errno: 0)
        }
    }

    /// SET_MEM_TABLE again with the same memory (as a front-end does after hotplug):
    /// the back-end remaps while its queues may be running.
    public func resendMemoryTable() throws(TestFrontendError) {
        do { try sendMemoryTable() } catch { throw .vhostUser(error) }
    }

    private func sendMemoryTable() throws(VhostUserError) {
        let regions = memory.descriptors.map {
            MemoryRegion(guestAddress: $0.guestAddress.rawValue, size: $0.size, userAddress: $0.userAddress, mmapOffset: $0.mmapOffset)
        }
        try frontend.setMemTable(regions, fds: memory.descriptors.map(\.fd))
    }

    /// The frontend-virtual address of guest address `address` (vring addresses are these).
    func userAddress(_ address: GuestAddress) -> UInt64 {
        // One region at guest address 0: user address = region start + guest address.
        memory.descriptors[0].userAddress + address.rawValue
    }

    private func startQueue(_ index: Int, enable: Bool) throws {
        let base = GuestAddress(Self.ringStride(options.queueSize) * UInt64(index))
        let ring = try DriverQueue(memory: memory, size: options.queueSize, at: base)
        var queue = try DrivenQueue(ring: ring)
        queue.kickedAvail = ring.startIndex
        try frontend.setVringNum(index: index, num: options.queueSize)
        try frontend.setVringAddr(VringAddress(
            index: UInt32(index), descriptorTable: userAddress(ring.descriptorTable),
            usedRing: userAddress(ring.usedRing), availableRing: userAddress(ring.availableRing)))
        try frontend.setVringBase(index: index, base: ring.startIndex)
        try frontend.setVringCall(index: index, fd: queue.call.fd.descriptor)
        try frontend.setVringKick(index: index, fd: queue.kick.fd.descriptor)
        if enable { try frontend.setVringEnable(index: index, enabled: true) }
        queue.started = true
        queues.append(queue)
    }

    // MARK: - Config space and teardown

    /// `size` bytes of device config space from `offset` (CONFIG negotiated).
    /// Reads from offset 0 and slices, as the VMM does: libvhost-user back-ends
    /// (qemu-storage-daemon) ignore the offset field. Use `frontend.getConfig` to test
    /// a back-end's own offset handling.
    public func config(offset: Int = 0, size: Int) throws(TestFrontendError) -> [UInt8] {
        guard hasProtocolFeature(.config) else { throw .unsupported("CONFIG protocol feature not negotiated") }
        guard offset >= 0, size > 0, offset + size <= VhostUser.maxConfigSize else {
            throw .invalidArgument("config range \(offset)+\(size)")
        }
        do {
            return Array(try frontend.getConfig(offset: 0, size: UInt32(offset + size)).dropFirst(offset))
        } catch { throw .vhostUser(error) }
    }

    /// Stops a queue: SET_VRING_ENABLE 0 (with protocol features), then GET_VRING_BASE.
    /// Returns the back-end's next available index. Submissions still in flight stay
    /// recorded (the back-end may have completed some before stopping).
    @discardableResult
    public func stop(queue index: Int) throws(TestFrontendError) -> UInt16 {
        try checkQueue(index)
        do {
            if ackedFeatures & VirtioFeature.protocolFeatures != 0 {
                try frontend.setVringEnable(index: index, enabled: false)
            }
            let base = try frontend.getVringBase(index: index)
            queues[index].started = false
            return base
        } catch { throw .vhostUser(error) }
    }

    /// Starts a stopped queue again on the same rings from `base` (what GET_VRING_BASE
    /// returned): NUM, ADDR, BASE, CALL, KICK, ENABLE.
    public func restart(queue index: Int, base: UInt16) throws(TestFrontendError) {
        try checkQueue(index)
        let ring = queues[index].ring
        do {
            try frontend.setVringNum(index: index, num: options.queueSize)
            try frontend.setVringAddr(VringAddress(
                index: UInt32(index), descriptorTable: userAddress(ring.descriptorTable),
                usedRing: userAddress(ring.usedRing), availableRing: userAddress(ring.availableRing)))
            try frontend.setVringBase(index: index, base: base)
            try frontend.setVringCall(index: index, fd: queues[index].call.fd.descriptor)
            try frontend.setVringKick(index: index, fd: queues[index].kick.fd.descriptor)
            if ackedFeatures & VirtioFeature.protocolFeatures != 0 { try frontend.setVringEnable(index: index, enabled: true) }
        } catch { throw .vhostUser(error) }
        queues[index].started = true
    }

    /// Hangs up the socket (the back-end sees EOF and, typically, resets its rings).
    public func disconnect() { connection.shutdown() }

    func checkQueue(_ index: Int) throws(TestFrontendError) {
        guard queues.indices.contains(index) else {
            throw .invalidArgument("queue \(index) (\(queues.count) started; call start() first)")
        }
    }
}

extension VirtioFeature {
    /// Bits the test frontend never acks: it drives split rings without an IOMMU,
    /// dirty log or notification data.
    public static let unsupportedByTestFrontend: UInt64 =
        logAll | accessPlatform | ringPacked | notificationData
}
