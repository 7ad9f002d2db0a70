// What a device worker implements. Workers never see raw messages: the
// BackendRequestHandler validates every request and calls these in protocol order.

/// One SET_MEM_TABLE region with the fd it is mapped from (owned; keep it as long as
/// the mapping is needed). The device maps `fd` at `region.mmapOffset` for `region.size`
/// bytes, after checking the fd is large enough.
public struct MemoryRegionDescriptor: Sendable {
    public let region: MemoryRegion
    public let fd: OwnedFD

    public init(region: MemoryRegion, fd: OwnedFD) { self.region = region; self.fd = fd }
}

/// Everything needed to start a split virtqueue, gathered from SET_VRING_NUM, _ADDR and
/// _BASE. Ring addresses are front-end user addresses: translate them through the
/// memory table's `userAddress` ranges, not `guestAddress`.
public struct QueueSetup: Equatable, Sendable {
    /// Queue size: a power of two, 1...maxQueueSize.
    public var size: UInt16
    public var descriptorTable: UInt64
    public var availableRing: UInt64
    public var usedRing: UInt64
    /// Next available-ring index to process (SET_VRING_BASE; 0 if never sent).
    public var nextAvailIndex: UInt16

    public init(size: UInt16, descriptorTable: UInt64, availableRing: UInt64, usedRing: UInt64, nextAvailIndex: UInt16) {
        self.size = size; self.descriptorTable = descriptorTable; self.availableRing = availableRing
        self.usedRing = usedRing; self.nextAvailIndex = nextAvailIndex
    }
}

/// The device side of a vhost-user back-end. Any error thrown ends the connection
/// (after a failure REPLY_ACK when one was requested), except from `config`, whose
/// failure is reported to the front-end as an empty GET_CONFIG reply.
public protocol VhostUserDevice: AnyObject {
    /// Virtio feature bits offered (VERSION_1, EVENT_IDX, device bits...). The handler
    /// adds VHOST_USER_F_PROTOCOL_FEATURES and removes VIRTIO_F_RING_PACKED (split rings only).
    var deviceFeatures: UInt64 { get }
    /// Protocol features the device supports; the handler offers the intersection with
    /// `BackendRequestHandler.supportedProtocolFeatures`.
    var protocolFeatures: UInt64 { get }
    /// Number of virtqueues (1...256).
    var queueCount: Int { get }
    /// Largest queue size accepted by SET_VRING_NUM (power of two, at most 32768).
    var maxQueueSize: Int { get }

    /// Acked virtio features (without the vhost-user bit 30). May be called again later.
    func setFeatures(_ acked: UInt64) throws
    /// Config space bytes [offset, offset+size); must return exactly `size` bytes.
    func config(offset: UInt32, size: UInt32) throws -> [UInt8]
    /// Guest write to config space; `liveMigration` allows writing read-only fields.
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws
    /// Replaces the whole memory table (may arrive while queues run, e.g. hotplug).
    func setMemoryTable(_ regions: [MemoryRegionDescriptor]) throws
    /// Called once before `startQueue` after each (re)start of the ring.
    func configureQueue(_ index: Int, _ setup: QueueSetup) throws
    /// nil = no fd: poll the ring instead of waiting for kicks.
    func setQueueKick(_ index: Int, fd: OwnedFD?) throws
    /// nil = no fd: the front-end polls; do not signal.
    func setQueueCall(_ index: Int, fd: OwnedFD?) throws
    func setQueueErr(_ index: Int, fd: OwnedFD?) throws
    /// The ring is started and enabled: process it.
    func startQueue(_ index: Int) throws
    /// SET_VRING_ENABLE 0 on a running ring: stop processing, keep the queue state;
    /// `startQueue` may follow.
    func disableQueue(_ index: Int) throws
    /// GET_VRING_BASE: stop the ring, drop its kick fd and state, return the next
    /// available-ring index to process.
    func stopQueue(_ index: Int) throws -> UInt16
    /// GET_INFLIGHT_FD: allocate the shared inflight buffer (only with INFLIGHT_SHMFD).
    func getInflight(_ request: InflightDescription) throws -> (InflightDescription, OwnedFD)
    /// SET_INFLIGHT_FD: adopt an existing inflight buffer (only with INFLIGHT_SHMFD).
    func setInflight(_ description: InflightDescription, fd: OwnedFD) throws
    /// RESET_DEVICE: stop all queues and return to the initial state.
    func reset()
}

/// Thrown by the default implementations of optional operations.
public struct DeviceOperationUnsupported: Error, CustomStringConvertible {
    public let operation: String
    public init(operation: String) { self.operation = operation }
    public var description: String { "\(operation) is not supported by this device" }
}

extension VhostUserDevice {
    public var protocolFeatures: UInt64 { .protocolFeatures(.mq, .replyAck, .config, .resetDevice) }
    public func config(offset: UInt32, size: UInt32) throws -> [UInt8] { throw DeviceOperationUnsupported(operation: "GET_CONFIG") }
    public func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws { throw DeviceOperationUnsupported(operation: "SET_CONFIG") }
    public func setQueueErr(_ index: Int, fd: OwnedFD?) throws {}
    public func getInflight(_ request: InflightDescription) throws -> (InflightDescription, OwnedFD) { throw DeviceOperationUnsupported(operation: "GET_INFLIGHT_FD") }
    public func setInflight(_ description: InflightDescription, fd: OwnedFD) throws { throw DeviceOperationUnsupported(operation: "SET_INFLIGHT_FD") }
}
