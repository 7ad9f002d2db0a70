/// Device-independent virtio feature bits (virtio 1.2, 6) and the vhost-user bit in the
/// same word, as masks.
public enum VirtioFeature {
    /// VHOST_F_LOG_ALL: dirty logging for migration (the test frontend never logs).
    public static let logAll: UInt64 = 1 << 26
    public static let indirectDescriptors: UInt64 = 1 << 28
    public static let eventIdx: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES (vhost-user only, never shown to a guest).
    public static let protocolFeatures: UInt64 = 1 << 30
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
    public static let ringPacked: UInt64 = 1 << 34
    public static let notificationData: UInt64 = 1 << 38

    /// Bits the test frontend never acks: it drives split rings without an IOMMU,
    /// dirty log or notification data.
    public static let unsupportedByTestFrontend: UInt64 =
        logAll | accessPlatform | ringPacked | notificationData
}
