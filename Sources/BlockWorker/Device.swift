import Glibc
import IPC
import VirtioCore

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

/// The vhost-user-blk device: features, config space, and the queues' lifecycle.
/// All methods run on the vhost-user (main) thread; each started queue runs on its own
/// QueueWorker thread, which owns the ring until stopped.
final class BlockDevice: VhostUserDevice {
    let disk: DiskImage
    let options: BlockDeviceOptions
    let state: BlockState
    var metrics: Metrics { state.metrics }

    private var memory: MemoryMap?
    /// The inflight buffer (GET_INFLIGHT_FD created it, or SET_INFLIGHT_FD handed over
    /// a previous worker's): queues started after it is set track and recover with it.
    private(set) var inflight: InflightBuffer?

    private struct Slot {
        var setup: QueueSetup?
        var kick: OwnedFD?
        var call: OwnedFD?
        var err: OwnedFD?
        /// Configured ring not running (or never started): its state is kept here.
        var parked: QueueHandler?
        /// Running ring: the worker owns the handler.
        var worker: QueueWorker?
        /// The ring setup could not be used (addresses outside memory, misaligned).
        var unusable = false
    }
    private var slots: [Slot]
    /// The memfd GET_INFLIGHT_FD hands out, made before the sandbox (see InflightBuffer.reserve).
    private let reservedInflight: OwnedFD?

    init(disk: DiskImage, options: BlockDeviceOptions, metrics: Metrics = Metrics()) {
        self.disk = disk
        reservedInflight = try? InflightBuffer.reserve(numQueues: UInt16(clamping: options.queueCount),
                                                       maxQueueSize: UInt16(clamping: options.maxQueueSize))
        self.options = options
        let serial = Array((options.serial ?? disk.derivedSerial).utf8.prefix(BlockLayout.idBytes))
        let limits = RequestLimits(
            capacity: disk.capacity, readOnly: disk.readOnly,
            discard: !disk.readOnly, writeZeroes: !disk.readOnly,
            maxDiscardSectors: options.maxDiscardSectors, maxDiscardSegments: options.maxDiscardSegments,
            maxWriteZeroesSectors: options.maxWriteZeroesSectors, maxWriteZeroesSegments: options.maxWriteZeroesSegments)
        state = BlockState(disk: disk, serial: serial, limits: limits, metrics: metrics,
                           faults: FaultInjector(options.faults))
        slots = Array(repeating: Slot(), count: options.queueCount)
    }

    deinit { stopAll() }

    // MARK: - Features and config

    var deviceFeatures: UInt64 {
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
        var description: String { "config range \(offset)+\(size) is past the \(VhostUser.maxConfigSize)-byte limit" }
        private var offset: UInt32 { if case let .outOfRange(o, _) = self { return o }; return 0 }
        private var size: UInt32 { if case let .outOfRange(_, s) = self { return s }; return 0 }
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

    // MARK: - Memory and queues

    func setMemoryTable(_ regions: [IPC.MemoryRegionDescriptor]) throws {
        let map = try MemoryMap(vhostUser: regions)
        // Rings keep their positions; running ones pause while they move to the new map.
        for i in slots.indices {
            let wasRunning = slots[i].worker != nil
            pause(i)
            // Also retries rings that did not fit the previous table.
            if let setup = slots[i].setup {
                slots[i].parked = rebuild(i, setup, on: map, from: slots[i].parked)
            }
            if wasRunning { try resume(i) }
        }
        memory = map
    }

    func configureQueue(_ index: Int, _ setup: QueueSetup) throws {
        slots[index].setup = setup
        slots[index].parked = nil
        slots[index].unusable = false
        guard let memory else { slots[index].unusable = true; return }
        slots[index].parked = rebuild(index, setup, on: memory, from: nil)
    }

    /// Builds the queue over `map`. Ring addresses are front-end virtual: translate
    /// through the regions' user addresses. A ring that does not fit guest memory makes
    /// that queue unusable (reported, never processed) instead of ending the device.
    ///
    /// A fresh start with an inflight buffer first recovers it ("When reconnecting"):
    /// heads still inflight are resubmitted in fetch order, and the available ring is
    /// read from used.idx + their count (every taken head is either in the used ring or
    /// still inflight), whatever SET_VRING_BASE said.
    private func rebuild(_ i: Int, _ setup: QueueSetup, on map: MemoryMap, from oldHandler: QueueHandler?) -> QueueHandler? {
        let old = oldHandler?.queue
        let n = setup.size
        do {
            let desc = try map.guestAddress(ofUser: setup.descriptorTable, length: SplitRingLayout.descriptorTableSize(n))
            let avail = try map.guestAddress(ofUser: setup.availableRing, length: SplitRingLayout.availableRingSize(n))
            let used = try map.guestAddress(ofUser: setup.usedRing, length: SplitRingLayout.usedRingSize(n))
            // The used index continues from what the ring holds (the driver zeroes it
            // on a fresh start; after GET/SET_VRING_BASE it is where the device left it).
            let nextUsed = try old?.nextUsed ?? map.load(UInt16.self, at: used.adding(2))
            var nextAvail = old?.nextAvail ?? setup.nextAvailIndex
            var tracking = oldHandler?.inflight
            var resubmit = oldHandler?.resubmit ?? []
            if oldHandler == nil, var fresh = inflight?.queue(i, ringSize: n) {
                resubmit = fresh.recover(ringUsedIndex: nextUsed)
                nextAvail = nextUsed &+ UInt16(truncatingIfNeeded: resubmit.count)
                tracking = fresh
                if !resubmit.isEmpty {
                    warn("queue \(i): resubmitting \(resubmit.count) request(s) left in flight by the previous worker")
                    state.metrics.resubmitted.add(UInt64(resubmit.count))
                }
            }
            let queue = try Virtqueue(memory: map, size: UInt32(n), descriptorTable: desc, availableRing: avail,
                                      usedRing: used, eventIdx: state.ackedFeatures & BlockFeature.eventIdx != 0,
                                      nextAvail: nextAvail, nextUsed: nextUsed)
            slots[i].unusable = false
            var handler = QueueHandler(queue: queue, state: state)
            handler.inflight = tracking
            handler.resubmit = resubmit
            return handler
        } catch {
            warn("queue \(i): ring unusable: \(error)")
            state.metrics.brokenRings.add()
            if let err = slots[i].err { signalEventfd(err.rawValue) }
            slots[i].unusable = true
            return nil
        }
    }

    func getInflight(_ request: InflightDescription) throws -> (InflightDescription, OwnedFD) {
        guard let reservedInflight else { throw InflightError.memfd(.noMemory) }
        let buffer = try InflightBuffer.create(in: reservedInflight, numQueues: request.numQueues, queueSize: request.queueSize)
        inflight = buffer
        return (buffer.description, buffer.fd)
    }

    func setInflight(_ description: InflightDescription, fd: OwnedFD) throws {
        inflight = try InflightBuffer.adopt(description, fd: fd)
    }

    func setQueueKick(_ index: Int, fd: OwnedFD?) throws {
        try replacingFD(index) { $0.kick = fd }
    }

    func setQueueCall(_ index: Int, fd: OwnedFD?) throws {
        try replacingFD(index) { $0.call = fd }
    }

    func setQueueErr(_ index: Int, fd: OwnedFD?) throws {
        try replacingFD(index) { $0.err = fd }
    }

    /// Fds may change while a ring runs (e.g. the front-end switches interrupt paths):
    /// pause the worker, swap, resume. The worker never sees an fd being closed.
    private func replacingFD(_ i: Int, _ change: (inout Slot) -> Void) throws {
        let wasRunning = slots[i].worker != nil
        pause(i)
        change(&slots[i])
        if wasRunning { try resume(i) }
    }

    func startQueue(_ index: Int) throws {
        try resume(index)
    }

    func disableQueue(_ index: Int) throws {
        pause(index)
    }

    func stopQueue(_ index: Int) throws -> UInt16 {
        pause(index)
        let next = slots[index].parked?.queue.nextAvail ?? slots[index].setup?.nextAvailIndex ?? 0
        slots[index].parked = nil
        slots[index].setup = nil
        slots[index].kick = nil
        slots[index].unusable = false
        return next
    }

    func reset() {
        stopAll()
        slots = Array(repeating: Slot(), count: options.queueCount)
        memory = nil
        inflight = nil
        state.ackedFeatures = 0
        state.writeback = true
    }

    func stopAll() {
        for i in slots.indices { pause(i) }
    }

    /// Whether queue `i` has a running worker (for tests).
    func isRunning(_ i: Int) -> Bool { slots[i].worker != nil }

    /// Stops the worker (if any) and keeps its exact ring state in `parked`.
    private func pause(_ i: Int) {
        guard let worker = slots[i].worker else { return }
        slots[i].parked = worker.stop()
        slots[i].worker = nil
    }

    private func resume(_ i: Int) throws {
        guard slots[i].worker == nil, var handler = slots[i].parked else { return }
        handler.callFD = slots[i].call?.rawValue
        handler.errFD = slots[i].err?.rawValue
        slots[i].worker = try QueueWorker(handler: handler, kickFD: slots[i].kick?.rawValue, name: "blk-q\(i)")
        slots[i].parked = nil
    }
}
