import Glibc
import IPC
import Synchronization
import SystemPackage
import VirtioCore

/// Device-wide state every queue reads: negotiated features and the cache mode.
/// Written by the vhost-user thread, read by queue threads.
final class BlockState: Sendable {
    let limits: RequestLimits
    let serial: [UInt8]
    let disk: DiskImage
    let metrics: Metrics
    /// Injected faults (`--fault`); empty normally.
    let faults: FaultInjector
    private let acked = AtomicU64Box()
    /// Config `writeback`: 1 = write-back cache (FLUSH makes writes stable), 0 = writethrough.
    private let writebackFlag = AtomicU64Box(1)

    init(disk: DiskImage, serial: [UInt8], limits: RequestLimits, metrics: Metrics,
         faults: FaultInjector = FaultInjector([])) {
        self.faults = faults
        self.disk = disk
        self.serial = serial
        self.limits = limits
        self.metrics = metrics
    }

    var ackedFeatures: UInt64 {
        get { acked.value }
        set { acked.value = newValue }
    }

    var writeback: Bool {
        get { writebackFlag.value != 0 }
        set { writebackFlag.value = newValue ? 1 : 0 }
    }

    /// Whether a completed write must already be stable (5.2.6.2 "stable" rules): when
    /// neither FLUSH nor CONFIG_WCE was negotiated, or the driver chose writethrough.
    var writethrough: Bool {
        let f = ackedFeatures
        if f & (BlockFeature.flush | BlockFeature.configWCE) == 0 { return true }
        return !writeback
    }

    /// Per-request limits with the negotiated DISCARD / WRITE_ZEROES bits applied.
    var negotiatedLimits: RequestLimits {
        var l = limits
        let f = ackedFeatures
        l.discard = l.discard && f & BlockFeature.discard != 0
        l.writeZeroes = l.writeZeroes && f & BlockFeature.writeZeroes != 0
        return l
    }
}

final class AtomicU64Box: Sendable {
    private let atomic: Atomic<UInt64>
    init(_ value: UInt64 = 0) { atomic = Atomic(value) }
    var value: UInt64 {
        get { atomic.load(ordering: .acquiring) }
        set { atomic.store(newValue, ordering: .releasing) }
    }
}

/// Processes one queue: pops every available chain, executes it against the disk,
/// and completes the whole batch with one used.idx publish and at most one
/// notification. Owned by exactly one thread at a time (the queue's worker, or the
/// vhost-user thread while the worker is stopped).
struct QueueHandler {
    var queue: Virtqueue
    let state: BlockState
    /// Where to signal used buffers (nil: the front-end polls).
    var callFD: CInt?
    /// Signalled when the ring is found broken (VHOST_USER_SET_VRING_ERR).
    var errFD: CInt?
    /// Set when the ring itself is broken; the queue then processes nothing more until
    /// it is reconfigured (stopQueue/GET_VRING_BASE, then a new start).
    private(set) var broken: VirtqueueError?
    /// Inflight tracking (INFLIGHT_SHMFD), when the front-end set up a buffer.
    var inflight: InflightQueue?
    /// Heads a previous worker took but never completed, in fetch order: processed
    /// before any new available entry.
    var resubmit: [UInt16] = []
    /// Heads staged in the used ring since the last publish (the inflight "last batch").
    private var batchHeads: [UInt16] = []
    /// Per-batch scratch, kept between batches so a batch allocates nothing.
    private var completions: [Completion] = []
    private var returnedEmpty: [UInt16] = []

    init(queue: Virtqueue, state: BlockState, callFD: CInt? = nil, errFD: CInt? = nil) {
        self.queue = queue
        self.state = state
        self.callFD = callFD
        self.errFD = errFD
    }

    /// One completed request, its status not yet written (writethrough syncs first).
    private struct Completion {
        let chain: DescriptorChain
        var status: BlockStatus
        let dataWritten: UInt32
        let statusOffset: Int
        /// A successful write that a writethrough cache must sync before completion.
        let needsSync: Bool
    }

    /// Drains the ring: batches until no more buffers arrive after notifications are
    /// re-enabled (2.7.10: re-check after enabling, or a kick can be lost).
    mutating func drain() {
        while broken == nil {
            queue.disableNotifications()
            processBatch()
            guard broken == nil else { return }
            if !resubmit.isEmpty { continue }
            do {
                if try !queue.enableNotifications() { return }
            } catch {
                markBroken(error)
            }
        }
    }

    /// Takes every chain available now (at most the queue size), completes them, then
    /// publishes used.idx once and sends at most one notification. Returns the number
    /// of chains completed.
    @discardableResult
    mutating func processBatch() -> Int {
        guard broken == nil else { return 0 }
        completions.removeAll(keepingCapacity: true)
        returnedEmpty.removeAll(keepingCapacity: true)
        let limits = state.negotiatedLimits
        let writethrough = state.writethrough
        var taken = 0
        // At most `size` per batch: staged entries must never exceed the ring (2.7.8).
        while taken < Int(queue.size) {
            let chain: DescriptorChain
            do {
                guard let next = try takeNext() else { break }
                chain = next
            } catch let VirtqueueError.malformedChain(head, _) where head < queue.size {
                // Unparseable chain: no status byte can be trusted; give it back empty.
                taken += 1
                state.metrics.malformedChains.add()
                returnedEmpty.append(head)
                continue
            } catch {
                // avail.idx jumped, or a head outside the table: the ring is broken.
                markBroken(error)
                break
            }
            taken += 1
            guard let request = BlockRequest.parse(chain, limits: limits) else {
                // No device-writable byte: nowhere to put a status.
                state.metrics.malformedChains.add()
                returnedEmpty.append(chain.head)
                continue
            }
            state.metrics.count(request.type)
            let (status, written, isWrite) = execute(request, chain)
            completions.append(Completion(chain: chain, status: status, dataWritten: written,
                                          statusOffset: request.statusOffset,
                                          needsSync: writethrough && isWrite && status == .ok))
        }
        if completions.contains(where: \.needsSync), state.disk.flush() != nil {
            for i in completions.indices where completions[i].needsSync { completions[i].status = .ioError }
        }
        for c in completions {
            state.metrics.count(c.status)
            _ = withUnsafeBytes(of: c.status.rawValue) { c.chain.copyToWritable(offset: c.statusOffset, from: $0) }
            // used len: the bytes written into the chain, data (only on success) plus status.
            let length = (c.status == .ok ? c.dataWritten : 0) + 1
            stage(head: c.chain.head, length: length)
        }
        for head in returnedEmpty { stage(head: head, length: 0) }
        let count = completions.count + returnedEmpty.count
        // Chains point into the queue's map without holding it: none outlives the batch.
        completions.removeAll(keepingCapacity: true)
        if count > 0, let ms = state.faults.delayMilliseconds {
            // delay,ms=D: the whole batch completes D ms late.
            FaultInjector.sleep(ms: ms)
            state.metrics.faultsInjected.add(UInt64(count))
        }
        if count > 0 {
            state.metrics.batches.add()
            publish()
            if queue.needsNotification() { notify() }
            // crash,after=N: the worker dies once N requests have been completed.
            state.faults.completed(count) { state.metrics.faultsInjected.add() }
        }
        return count
    }

    /// The next chain to process: a resubmitted head first, else the next available
    /// entry, marked inflight as soon as it is taken (malformed ones too: they are
    /// taken and will be returned).
    private mutating func takeNext() throws(VirtqueueError) -> DescriptorChain? {
        if !resubmit.isEmpty {
            let head = resubmit.removeFirst()
            return try queue.chain(head: head)
        }
        let chain: DescriptorChain?
        do {
            chain = try queue.popAvailable()
        } catch {
            if case let .malformedChain(head, _) = error, head < queue.size { inflight?.markTaken(head) }
            throw error
        }
        if let chain { inflight?.markTaken(chain.head) }
        return chain
    }

    private mutating func stage(head: UInt16, length: UInt32) {
        // Cannot fail: head < size is checked, and a batch is at most `size` entries.
        do {
            try queue.stageUsed(head: head, length: length)
            inflight?.linkIntoBatch(head)
            batchHeads.append(head)
        } catch {
            markBroken(error)
        }
    }

    /// Publishes used.idx, then (inflight tracking) clears the batch's inflight flags
    /// and records used_idx: a crash in between is resolved from the batch list.
    private mutating func publish() {
        queue.publishUsed()
        if let inflight, !batchHeads.isEmpty {
            inflight.completeBatch(batchHeads, usedIndex: queue.nextUsed)
        }
        batchHeads.removeAll(keepingCapacity: true)
    }

    /// Runs one parsed request. Returns its status, the data bytes written into the
    /// chain, and whether it wrote to the disk.
    private func execute(_ request: BlockRequest, _ chain: DescriptorChain) -> (BlockStatus, UInt32, Bool) {
        let operation: BlockOperation
        switch request.operation {
        case let .success(op): operation = op
        case let .failure(error): return (error.status, 0, false)
        }
        let disk = state.disk
        if !state.faults.isEmpty, let (first, sectors) = operation.sectorRange,
           state.faults.failsIO(firstSector: first, sectors: sectors) {
            // eio,rate=P / eio,sectors=A-B: fail without touching the image.
            state.metrics.faultsInjected.add()
            if case .read = operation { return (.ioError, 0, false) }
            return (.ioError, 0, operation.writesDisk)
        }
        switch operation {
        case let .read(offset, length):
            let failed = chain.withIovecs(writable: true, skip: 0, length: length) {
                disk.read($0, offset: offset, length: length)
            }
            if failed != nil { return (.ioError, 0, false) }
            state.metrics.bytesRead.add(length)
            return (.ok, UInt32(length), false)
        case let .write(offset, length):
            let failed = chain.withIovecs(writable: false, skip: UInt64(BlockLayout.headerSize), length: length) {
                disk.write($0, offset: offset, length: length)
            }
            if failed != nil { return (.ioError, 0, true) }
            state.metrics.bytesWritten.add(length)
            return (.ok, 0, true)
        case .flush:
            return (disk.flush() == nil ? .ok : .ioError, 0, false)
        case let .getID(length):
            // NUL-padded to 20 bytes; no terminator when the ID is exactly 20 (5.2.6).
            var id = [UInt8](repeating: 0, count: BlockLayout.idBytes)
            for (i, b) in state.serial.prefix(BlockLayout.idBytes).enumerated() { id[i] = b }
            _ = id.withUnsafeBytes { chain.copyToWritable(from: UnsafeRawBufferPointer(rebasing: $0[..<length])) }
            return (.ok, UInt32(length), false)
        case let .discard(segments):
            for s in segments {
                if disk.discard(offset: s.sector << BlockLayout.sectorShift,
                                length: UInt64(s.sectors) << BlockLayout.sectorShift) != nil {
                    return (.ioError, 0, true)
                }
            }
            return (.ok, 0, true)
        case let .writeZeroes(segments):
            for s in segments {
                if disk.writeZeroes(offset: s.sector << BlockLayout.sectorShift,
                                    length: UInt64(s.sectors) << BlockLayout.sectorShift,
                                    unmap: s.flags & BlockLayout.unmapFlag != 0) != nil {
                    return (.ioError, 0, true)
                }
            }
            return (.ok, 0, true)
        }
    }

    private func notify() {
        guard let callFD else { return }
        state.metrics.interrupts.add()
        signalEventfd(callFD)
    }

    private mutating func markBroken(_ error: Error) {
        guard broken == nil else { return }
        broken = error as? VirtqueueError ?? .usedRingOverflow
        state.metrics.brokenRings.add()
        // Whatever was staged is still published so completed requests are not lost.
        publish()
        if let errFD { signalEventfd(errFD) }
        warn("queue stopped: \(error)")
    }
}

/// Adds 1 to an eventfd (a kick, call or err notification).
func signalEventfd(_ fd: CInt) {
    var one: UInt64 = 1
    while write(fd, &one, 8) < 0 && errno == EINTR {}
}

func warn(_ message: String) {
    fputs("volt-blk-worker: \(message)\n", stderr)
}

extension BlockOperation {
    /// The sectors a request touches, for `eio` faults (nil: FLUSH, GET_ID).
    var sectorRange: (first: UInt64, count: UInt64)? {
        let shift = BlockLayout.sectorShift
        switch self {
        case let .read(offset, length), let .write(offset, length):
            return (offset >> shift, (length + (1 << shift) - 1) >> shift)
        case let .discard(segments), let .writeZeroes(segments):
            guard let first = segments.map(\.sector).min(),
                  let end = segments.map({ $0.sector + UInt64($0.sectors) }).max() else { return nil }
            return (first, end - first)
        case .flush, .getID: return nil
        }
    }

    var writesDisk: Bool {
        switch self {
        case .write, .discard, .writeZeroes: return true
        case .read, .flush, .getID: return false
        }
    }
}
