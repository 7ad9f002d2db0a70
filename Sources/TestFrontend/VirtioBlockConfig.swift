/// The virtio-blk config space fields a test usually checks (struct virtio_blk_config,
/// virtio 1.2, 5.2.4). Fields the bytes do not reach are nil.
public struct VirtioBlockConfig: Equatable, Sendable {
    /// Bytes up to and including write_zeroes_may_unmap.
    public static let size = 57

    /// In 512-byte sectors, whatever blk_size is.
    public let capacity: UInt64
    public let sizeMax: UInt32?
    public let segMax: UInt32?
    public let blockSize: UInt32?
    public let numQueues: UInt16?
    public let maxDiscardSectors: UInt32?
    public let maxDiscardSegments: UInt32?
    public let maxWriteZeroesSectors: UInt32?
    public let maxWriteZeroesSegments: UInt32?

    public init?(_ bytes: [UInt8]) {
        guard let capacity = bytes.littleEndian(UInt64.self, at: 0) else { return nil }
        self.capacity = capacity
        sizeMax = bytes.littleEndian(UInt32.self, at: 8)
        segMax = bytes.littleEndian(UInt32.self, at: 12)
        blockSize = bytes.littleEndian(UInt32.self, at: 20)
        numQueues = bytes.littleEndian(UInt16.self, at: 34)
        maxDiscardSectors = bytes.littleEndian(UInt32.self, at: 36)
        maxDiscardSegments = bytes.littleEndian(UInt32.self, at: 40)
        maxWriteZeroesSectors = bytes.littleEndian(UInt32.self, at: 48)
        maxWriteZeroesSegments = bytes.littleEndian(UInt32.self, at: 52)
    }
}
