import Glibc
import IPC
import VirtioCore
import WorkerCore

/// Everything the device is configured with on the command line.
struct BlockDeviceOptions {
    /// Injected faults (`--fault`).
    var faults: [FaultSpec] = []
    var queueCount = 1
    /// Largest ring accepted (SET_VRING_NUM). QEMU's vhost-user-blk uses 1024-entry rings.
    var maxQueueSize = 1024
    /// Data segments per request (seg_max). A chain holds at most queue-size buffers,
    /// two of which are the header and the status byte, and config space is read before
    /// the front-end picks its ring size: so this assumes rings of at least 256 entries
    /// (volt-vmm offers 256, QEMU 1024), and never exceeds maxQueueSize - 2.
    var segMax: UInt32 { UInt32(min(maxQueueSize, 256) - 2) }
    var serial: String?
    /// Largest single segment (size_max), bytes.
    var sizeMax: UInt32 = 1 << 20
    var maxDiscardSectors: UInt32 = 0x3f_ffff
    var maxDiscardSegments: UInt32 = 16
    var maxWriteZeroesSectors: UInt32 = 0x3f_ffff
    var maxWriteZeroesSegments: UInt32 = 16
}

/// The vhost-user-blk device: features, config space, and one queue thread per queue
/// (`BlockQueueHandler`). Rings, threads and the inflight buffer are the framework's.
final class BlockDevice: BackendDevice {
    let disk: DiskImage
    let options: BlockDeviceOptions
    let state: BlockState

    init(disk: DiskImage, options: BlockDeviceOptions) {
        self.disk = disk
        self.options = options
        let serial = Array((options.serial ?? disk.derivedSerial).utf8.prefix(BlockLayout.idBytes))
        let limits = RequestLimits(
            capacity: disk.capacity, readOnly: disk.readOnly,
            discard: !disk.readOnly, writeZeroes: !disk.readOnly,
            maxDiscardSectors: options.maxDiscardSectors, maxDiscardSegments: options.maxDiscardSegments,
            maxWriteZeroesSectors: options.maxWriteZeroesSectors, maxWriteZeroesSegments: options.maxWriteZeroesSegments)
        state = BlockState(disk: disk, serial: serial, limits: limits, faults: FaultInjector(options.faults))
    }

    // MARK: - Features and config

    var features: UInt64 {
        var f = BlockFeature.version1 | BlockFeature.sizeMax | BlockFeature.segMax | BlockFeature.blockSize
            | BlockFeature.flush | BlockFeature.topology | BlockFeature.configWCE | BlockFeature.mq
            | BlockFeature.indirectDesc | BlockFeature.eventIdx
        if disk.readOnly {
            f |= BlockFeature.readOnly
        } else {
            f |= BlockFeature.discard | BlockFeature.writeZeroes
        }
        return f
    }

    var protocolFeatures: UInt64 { .protocolFeatures(.mq, .replyAck, .config, .inflightShmfd) }
    var queueCount: Int { options.queueCount }
    var maxQueueSize: Int { options.maxQueueSize }
    var counterNames: [String] { BlockCounter.names }
    func threadName(_ index: Int) -> String { "blk-q\(index)" }

    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler {
        BlockQueueHandler(state: state)
    }

    func setFeatures(_ acked: UInt64) throws {
        state.ackedFeatures = acked
        // 5.2.5: with CONFIG_WCE but no FLUSH the device starts in writethrough.
        if acked & BlockFeature.configWCE != 0 && acked & BlockFeature.flush == 0 { state.writeback = false }
    }

    /// Logical block size: 512, or the O_DIRECT alignment (so a Linux guest never sends
    /// requests O_DIRECT would refuse).
    var blockSize: UInt32 { UInt32(max(512, disk.directAlignment)) }

    /// The whole config space as the driver sees it.
    var configSpace: [UInt8] {
        var c = [UInt8](repeating: 0, count: BlockConfigLayout.size)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { c[at + i] = b } }
        }
        put(disk.capacity, BlockConfigLayout.capacity)
        put(options.sizeMax, BlockConfigLayout.sizeMax)
        put(options.segMax, BlockConfigLayout.segMax)
        put(blockSize, BlockConfigLayout.blkSize)
        // Topology: 4 KiB physical blocks, I/O hints of one physical block.
        let exp = UInt8(blockSize >= 4096 ? 0 : 3)
        put(exp, BlockConfigLayout.physicalBlockExp)
        put(UInt8(0), BlockConfigLayout.alignmentOffset)
        put(UInt16(1) << exp, BlockConfigLayout.minIOSize)
        put(UInt32(0), BlockConfigLayout.optIOSize)
        // writeback starts at 1, with and without --direct: O_DIRECT skips the host page
        // cache but not the disk's own volatile cache, so a completed write is stable
        // only after FLUSH (fdatasync) either way. With writeback 0 (the driver's choice
        // via CONFIG_WCE, or CONFIG_WCE without FLUSH, or neither negotiated) every
        // batch of writes is fdatasync'ed before it completes.
        put(UInt8(state.writeback ? 1 : 0), BlockConfigLayout.writeback)
        put(UInt16(options.queueCount), BlockConfigLayout.numQueues)
        if !disk.readOnly {
            put(options.maxDiscardSectors, BlockConfigLayout.maxDiscardSectors)
            put(options.maxDiscardSegments, BlockConfigLayout.maxDiscardSeg)
            put(blockSize / 512, BlockConfigLayout.discardSectorAlignment)
            put(options.maxWriteZeroesSectors, BlockConfigLayout.maxWriteZeroesSectors)
            put(options.maxWriteZeroesSegments, BlockConfigLayout.maxWriteZeroesSeg)
            // Write zeroes with UNMAP punches a hole (deallocates): 1.
            put(UInt8(1), BlockConfigLayout.writeZeroesMayUnmap)
        }
        return c
    }

    enum ConfigError: Error, CustomStringConvertible {
        case outOfRange(offset: UInt32, size: UInt32)
        var description: String {
            guard case let .outOfRange(offset, size) = self else { return "" }
            return "config range \(offset)+\(size) is past the \(VhostUser.maxConfigSize)-byte limit"
        }
    }

    /// Bytes past the defined layout (up to the vhost-user maximum) read as 0, so a
    /// front-end with a newer, larger struct virtio_blk_config still works.
    func config(offset: UInt32, size: UInt32) throws -> [UInt8] {
        let end = UInt64(offset) + UInt64(size)
        guard end <= UInt64(VhostUser.maxConfigSize) else { throw ConfigError.outOfRange(offset: offset, size: size) }
        var space = configSpace
        if space.count < Int(end) { space += [UInt8](repeating: 0, count: Int(end) - space.count) }
        return Array(space[Int(offset)..<Int(end)])
    }

    /// Only `writeback` is writable, and only with CONFIG_WCE (5.2.5, 5.2.6.2); other
    /// writes are ignored rather than ending the connection (the guest chose them).
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws {
        let wce = UInt32(BlockConfigLayout.writeback)
        guard offset <= wce, UInt64(offset) + UInt64(data.count) > UInt64(wce) else { return }
        guard state.ackedFeatures & BlockFeature.configWCE != 0 else { return }
        let value = data[Int(wce - offset)]
        // A switch to writethrough makes earlier writes stable first.
        if value == 0 && state.writeback { _ = disk.flush() }
        state.writeback = value != 0
    }

    func reset() {
        state.ackedFeatures = 0
        state.writeback = true
    }
}
