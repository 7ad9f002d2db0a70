import IPC

/// What a device worker implements on top of the framework: its features, config
/// space, how its queues are grouped onto threads, and a handler per thread that moves
/// the data. Everything else — rings, kick registration, memory tables, inflight
/// tracking, threads, counters — is `DeviceBackend`'s.
///
/// Calls other than `makeHandler` come from the vhost-user thread, one at a time.
public protocol BackendDevice: AnyObject {
    /// Virtio feature bits offered (VERSION_1, ring and device bits).
    var features: UInt64 { get }
    /// Protocol features the device supports (offered: the intersection with what
    /// `BackendRequestHandler` implements). Include `.inflightShmfd` to have the
    /// framework keep an inflight buffer (see `Ring.inflight`).
    var protocolFeatures: UInt64 { get }
    var queueCount: Int { get }
    /// Largest queue size accepted (a power of two, at most 32768).
    var maxQueueSize: Int { get }
    /// The queues each thread serves, one list per thread; every queue in exactly one
    /// (at most 64 per thread). Default: one thread per queue.
    var threadLayout: [[Int]] { get }
    /// The device's counter names (`DeviceCounter.names`), after the framework's.
    var counterNames: [String] { get }
    /// The thread name shown in /proc for thread `index` (at most 15 bytes).
    func threadName(_ index: Int) -> String

    /// The handler for thread `index`, serving `queues` (made once, before the sandbox).
    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler

    /// SET_FEATURES (the vhost-user bit removed). Handlers hear of it afterwards.
    func setFeatures(_ acked: UInt64) throws
    /// Config space bytes [offset, offset+size); must return exactly `size` bytes.
    func config(offset: UInt32, size: UInt32) throws -> [UInt8]
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws
    /// The queue threads run (the worker is sandboxed, no message handled yet).
    func started(_ backend: DeviceBackend)
    /// A ring started, was disabled or stopped (after the framework applied it).
    func queueStateChanged(_ queue: Int, backend: DeviceBackend)
    /// RESET_DEVICE, after every ring was stopped: back to the initial state.
    func reset()
}

extension BackendDevice {
    public var protocolFeatures: UInt64 { .protocolFeatures(.mq, .replyAck, .config) }
    public var threadLayout: [[Int]] { (0..<queueCount).map { [$0] } }
    public func threadName(_ index: Int) -> String { "queue\(index)" }
    public func setFeatures(_ acked: UInt64) throws {}
    public func config(offset: UInt32, size: UInt32) throws -> [UInt8] {
        throw DeviceOperationUnsupported(operation: "GET_CONFIG")
    }
    public func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws {}
    public func started(_ backend: DeviceBackend) {}
    public func queueStateChanged(_ queue: Int, backend: DeviceBackend) {}
    public func reset() {}
}
