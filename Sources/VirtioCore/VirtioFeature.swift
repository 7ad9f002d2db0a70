/// Device-independent virtio feature bits (virtio 1.2, 6) and the vhost-user bit in the
/// same word, as masks. The one definition every worker, volt-vmm and the test frontend use.
public enum VirtioFeature {
    /// VHOST_F_LOG_ALL: dirty logging for migration (never offered or acked here).
    public static let logAll: UInt64 = 1 << 26
    /// VIRTIO_RING_F_INDIRECT_DESC (6.1).
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_RING_F_EVENT_IDX (6.1).
    public static let eventIdx: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES (vhost-user only, never shown to a guest).
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VIRTIO_F_VERSION_1: modern virtio, the only kind volt-vmm drives.
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
    public static let ringPacked: UInt64 = 1 << 34
    public static let notificationData: UInt64 = 1 << 38
}

/// virtio device IDs (virtio 1.2, 5): the DeviceID register of virtio-mmio.
public enum VirtioDeviceType: UInt32, Sendable {
    case net = 1
    case block = 2
    case entropy = 4
    case vsock = 19
}
