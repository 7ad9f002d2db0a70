/// Guest-physical addresses and size of one virtqueue, as the driver programmed them.
struct VirtqueueConfig: Codable, Equatable {
    var size: UInt16
    var descriptorTable: UInt64
    var availableRing: UInt64
    var usedRing: UInt64
}

/// What a virtio-mmio transport needs from the device behind it. For volt-vmm that is a
/// vhost-user backend in another process; the transport only sees this interface.
protocol VirtioDeviceBackend: AnyObject, Sendable {
    var deviceType: UInt32 { get }
    /// Virtio feature bits the device offers (transport bits included).
    var offeredFeatures: UInt64 { get }
    /// Maximum size of each queue; the count is the number of queues.
    var queueMaxSizes: [UInt16] { get }
    func readConfig(offset: UInt32, size: UInt32) throws -> [UInt8]
    func writeConfig(offset: UInt32, data: [UInt8]) throws
    /// DRIVER_OK: hand the negotiated features and the ready queues to the device.
    func activate(features: UInt64, queues: [Int: VirtqueueConfig]) throws
    /// Driver reset (status 0) after activation: stop all rings, forget driver state.
    func reset() throws
    /// Snapshot: stops every started ring and returns where each stopped (its next
    /// available index); nothing is in flight afterwards.
    func quiesce() throws -> [Int: UInt16]
    /// After a snapshot (or on restore, to a fresh device): starts the rings again at
    /// `bases`, with the features a driver acked.
    func resume(features: UInt64, queues: [Int: VirtqueueConfig], bases: [Int: UInt16]) throws
}
