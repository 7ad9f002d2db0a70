import VirtioCore

/// The virtio-blk config space fields a test usually checks (struct virtio_blk_config,
/// virtio 1.2, 5.2.4). Fields the bytes do not reach are nil.
public struct VirtioBlockConfig: Equatable, Sendable {
    /// Bytes up to and including write_zeroes_may_unmap.
    public static let size = BlockConfigLayout.writeZeroesMayUnmap + 1

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
        guard let capacity = bytes.littleEndian(UInt64.self, at: BlockConfigLayout.capacity) else { return nil }
        self.capacity = capacity
        sizeMax = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.sizeMax)
        segMax = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.segMax)
        blockSize = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.blkSize)
        numQueues = bytes.littleEndian(UInt16.self, at: BlockConfigLayout.numQueues)
        maxDiscardSectors = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.maxDiscardSectors)
        maxDiscardSegments = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.maxDiscardSeg)
        maxWriteZeroesSectors = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.maxWriteZeroesSectors)
        maxWriteZeroesSegments = bytes.littleEndian(UInt32.self, at: BlockConfigLayout.maxWriteZeroesSeg)
    }
}
