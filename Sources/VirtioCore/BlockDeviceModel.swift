// virtio-blk definitions (virtio 1.2, 5.2): feature bits, the config-space layout and
// the request format. The one copy volt-blk-worker, volt-vmm and the test frontend use.

/// virtio-blk feature bits (5.2.3), with the ring bits a block device offers (6).
public enum BlockFeature {
    public static let sizeMax: UInt64 = 1 << 1
    public static let segMax: UInt64 = 1 << 2
    public static let readOnly: UInt64 = 1 << 5
    public static let blockSize: UInt64 = 1 << 6
    public static let flush: UInt64 = 1 << 9
    public static let topology: UInt64 = 1 << 10
    public static let configWCE: UInt64 = 1 << 11
    public static let mq: UInt64 = 1 << 12
    public static let discard: UInt64 = 1 << 13
    public static let writeZeroes: UInt64 = 1 << 14
    public static let indirectDesc = VirtioFeature.indirectDescriptors
    public static let eventIdx = VirtioFeature.eventIdx
    public static let version1 = VirtioFeature.version1
}

/// struct virtio_blk_config offsets (5.2.4).
public enum BlockConfigLayout {
    public static let capacity = 0          // le64
    public static let sizeMax = 8           // le32
    public static let segMax = 12           // le32
    public static let geometry = 16         // le16 cylinders, u8 heads, u8 sectors
    public static let blkSize = 20          // le32
    public static let physicalBlockExp = 24 // u8
    public static let alignmentOffset = 25  // u8
    public static let minIOSize = 26        // le16
    public static let optIOSize = 28        // le32
    public static let writeback = 32        // u8
    public static let numQueues = 34        // le16
    public static let maxDiscardSectors = 36
    public static let maxDiscardSeg = 40
    public static let discardSectorAlignment = 44
    public static let maxWriteZeroesSectors = 48
    public static let maxWriteZeroesSeg = 52
    public static let writeZeroesMayUnmap = 56 // u8
    /// Through the virtio 1.2 secure-erase fields (60...71).
    public static let size = 72
}

/// Request types (5.2.6).
public enum BlockRequestType: UInt32, Sendable {
    case `in` = 0
    case out = 1
    case flush = 4
    case getID = 8
    case discard = 11
    case writeZeroes = 13
}

/// Status byte values (5.2.6).
public enum BlockStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// A request is a chain of a 16-byte device-readable header {le32 type, le32 reserved,
/// le64 sector}, type-specific data, and one device-writable status byte at the end.
public enum BlockLayout {
    public static let sectorSize: UInt64 = 512
    public static let sectorShift: UInt64 = 9
    public static let headerSize = 16
    /// struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags.
    public static let segmentSize = 16
    /// The device ID string is at most 20 bytes (VIRTIO_BLK_ID_BYTES), NUL-padded.
    public static let idBytes = 20
    /// Segment flag bit 0: unmap (write zeroes only).
    public static let unmapFlag: UInt32 = 1
}
