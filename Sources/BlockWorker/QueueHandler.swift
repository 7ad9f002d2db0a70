import Glibc
import IPC
import Synchronization
import VirtioCore
import WorkerCore

/// Device-wide state every queue reads: negotiated features and the cache mode.
/// Written by the vhost-user thread, read by queue threads.
final class BlockState: Sendable {
    let limits: RequestLimits
    let serial: [UInt8]
    let disk: DiskImage
    /// Injected faults (`--fault`); empty normally.
    let faults: FaultInjector
    private let acked = Atomic<UInt64>(0)
    /// Config `writeback`: 1 = write-back cache (FLUSH makes writes stable), 0 = writethrough.
    private let writebackFlag = Atomic<UInt64>(1)

    init(disk: DiskImage, serial: [UInt8], limits: RequestLimits, faults: FaultInjector = FaultInjector([])) {
        self.faults = faults
        self.disk = disk
        self.serial = serial
        self.limits = limits
    }

    var ackedFeatures: UInt64 {
        get { acked.load(ordering: .acquiring) }
        set { acked.store(newValue, ordering: .releasing) }
    }

    var writeback: Bool {
        get { writebackFlag.load(ordering: .acquiring) != 0 }
        set { writebackFlag.store(newValue ? 1 : 0, ordering: .releasing) }
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

/// A block queue thread's handler: it serves its one ring when kicked.
final class BlockQueueHandler: QueueThreadHandler {
    private var queue: BlockQueue

    init(state: BlockState) { queue = BlockQueue(state: state) }

    func handle(_ context: inout QueueThreadContext) -> Bool {
        if context.wasKicked(0) { queue.drain(&context.rings[0], &context.counters) }
        return false
    }
}

/// Processes one ring: pops every available chain, executes it against the disk, and
/// completes the whole batch with one used.idx publish and at most one notification.
/// Holds only per-batch scratch; the ring (queue, inflight state, resubmit list) is the
/// framework's.
struct BlockQueue {
    let state: BlockState
    /// Heads staged in the used ring since the last publish (the inflight "last batch").
    private var batchHeads: [UInt16] = []
    /// Per-batch scratch, kept between batches so a batch allocates nothing.
    private var completions: [Completion] = []
    private var returnedEmpty: [UInt16] = []

    init(state: BlockState) { self.state = state }

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
    mutating func drain(_ ring: inout Ring, _ counters: inout Counters) {
        while ring.isActive {
            ring.queue!.disableNotifications()
            processBatch(&ring, &counters)
            guard ring.isActive else { return }
            if !ring.resubmit.isEmpty { continue }
            do {
                if try !ring.queue!.enableNotifications() { return }
            } catch {
                fail(&ring, error, &counters)
            }
        }
    }

    /// Takes every chain available now (at most the queue size), completes them, then
    /// publishes used.idx once and sends at most one notification. Returns the number
    /// of chains completed.
    @discardableResult
    mutating func processBatch(_ ring: inout Ring, _ counters: inout Counters) -> Int {
        // Moved out for the batch (no copy: a copy would retain its memory map) and back.
        guard ring.isActive, var queue = ring.queue.take() else { return 0 }
        defer { ring.queue = queue }
        if !returnedEmpty.isEmpty { returnedEmpty.removeAll(keepingCapacity: true) }
        let limits = state.negotiatedLimits
        let writethrough = state.writethrough
        var taken = 0
        var broken: VirtqueueError?
        // At most `size` per batch: staged entries must never exceed the ring (2.7.8).
        while taken < Int(queue.size) {
            let chain: DescriptorChain
            do {
                guard let next = try takeNext(&queue, &ring) else { break }
                chain = next
            } catch let VirtqueueError.malformedChain(head, _) where head < queue.size {
                // Unparseable chain: no status byte can be trusted; give it back empty.
                taken += 1
                counters.add(BlockCounter.errorsMalformedChain)
                returnedEmpty.append(head)
                continue
            } catch {
                // avail.idx jumped, or a head outside the table: the ring is broken.
                broken = error
                break
            }
            taken += 1
            guard let request = BlockRequest.parse(chain, limits: limits) else {
                // No device-writable byte: nowhere to put a status.
                counters.add(BlockCounter.errorsMalformedChain)
                returnedEmpty.append(chain.head)
                continue
            }
            counters.add(BlockCounter.requests(request.type))
            let (status, written, isWrite) = execute(request, chain, &counters)
            completions.append(Completion(chain: chain, status: status, dataWritten: written,
                                          statusOffset: request.statusOffset,
                                          needsSync: writethrough && isWrite && status == .ok))
        }
        if completions.contains(where: \.needsSync), state.disk.flush() != nil {
            for i in completions.indices where completions[i].needsSync { completions[i].status = .ioError }
        }
        for c in completions {
            if let e = BlockCounter.errors(c.status) { counters.add(e) }
            _ = withUnsafeBytes(of: c.status.rawValue) { c.chain.copyToWritable(offset: c.statusOffset, from: $0) }
            // used len: the bytes written into the chain, data (only on success) plus status.
            let length = (c.status == .ok ? c.dataWritten : 0) + 1
            stage(&queue, &ring, head: c.chain.head, length: length, &broken)
        }
        for head in returnedEmpty { stage(&queue, &ring, head: head, length: 0, &broken) }
        let count = completions.count + returnedEmpty.count
        // Chains point into the queue's map without holding it: none outlives the batch.
        completions.removeAll(keepingCapacity: true)
        if count > 0, let ms = state.faults.delayMilliseconds {
            // delay,ms=D: the whole batch completes D ms late.
            FaultInjector.sleep(ms: ms)
            counters.faultsInjected &+= UInt64(count)
        }
        if count > 0 || broken != nil {
            // Whatever was staged is published, so completed requests are not lost.
            publish(&queue, &ring, &counters)
        }
        if count > 0 {
            counters.add(BlockCounter.batches)
            // crash,after=N: the worker dies once N requests have been completed.
            state.faults.completed(count) { counters.faultsInjected &+= 1 }
        }
        if let broken { ring.fail(broken, counters: &counters) }
        return count
    }

    /// The next chain to process: a resubmitted head first, else the next available
    /// entry, marked inflight as soon as it is taken (malformed ones too: they are
    /// taken and will be returned).
    private func takeNext(_ queue: inout Virtqueue, _ ring: inout Ring) throws(VirtqueueError) -> DescriptorChain? {
        if !ring.resubmit.isEmpty {
            let head = ring.resubmit.removeFirst()
            return try queue.chain(head: head)
        }
        let chain: DescriptorChain?
        do {
            chain = try queue.popAvailable()
        } catch {
            if case let .malformedChain(head, _) = error, head < queue.size { ring.inflight?.markTaken(head) }
            throw error
        }
        if let chain { ring.inflight?.markTaken(chain.head) }
        return chain
    }

    private mutating func stage(_ queue: inout Virtqueue, _ ring: inout Ring, head: UInt16, length: UInt32,
                                _ broken: inout VirtqueueError?) {
        // Cannot fail: head < size is checked, and a batch is at most `size` entries.
        do {
            try queue.stageUsed(head: head, length: length)
            ring.inflight?.linkIntoBatch(head)
            batchHeads.append(head)
        } catch {
            if broken == nil { broken = error }
        }
    }

    /// Publishes used.idx (and notifies), then (inflight tracking) clears the batch's
    /// inflight flags and records used_idx: a crash in between is resolved from the
    /// batch list.
    private mutating func publish(_ queue: inout Virtqueue, _ ring: inout Ring, _ counters: inout Counters) {
        queue.publish(notifying: ring.callFD, counters: &counters)
        if let inflight = ring.inflight, !batchHeads.isEmpty {
            inflight.completeBatch(batchHeads, usedIndex: queue.nextUsed)
        }
        if !batchHeads.isEmpty { batchHeads.removeAll(keepingCapacity: true) }
    }

    private mutating func fail(_ ring: inout Ring, _ error: VirtqueueError, _ counters: inout Counters) {
        ring.fail(error, counters: &counters)
    }

    /// Runs one parsed request. Returns its status, the data bytes written into the
    /// chain, and whether it wrote to the disk.
    private func execute(_ request: BlockRequest, _ chain: DescriptorChain, _ counters: inout Counters) -> (BlockStatus, UInt32, Bool) {
        let operation: BlockOperation
        switch request.operation {
        case let .success(op): operation = op
        case let .failure(error): return (error.status, 0, false)
        }
        let disk = state.disk
        if !state.faults.isEmpty, let (first, sectors) = operation.sectorRange,
           state.faults.failsIO(firstSector: first, sectors: sectors) {
            // eio,rate=P / eio,sectors=A-B: fail without touching the image.
            counters.faultsInjected &+= 1
            if case .read = operation { return (.ioError, 0, false) }
            return (.ioError, 0, operation.writesDisk)
        }
        switch operation {
        case let .read(offset, length):
            let failed = chain.withIovecs(writable: true, skip: 0, length: length) {
                disk.read($0, offset: offset, length: length)
            }
            if failed != nil { return (.ioError, 0, false) }
            counters.add(BlockCounter.bytesRead, length)
            return (.ok, UInt32(length), false)
        case let .write(offset, length):
            let failed = chain.withIovecs(writable: false, skip: UInt64(BlockLayout.headerSize), length: length) {
                disk.write($0, offset: offset, length: length)
            }
            if failed != nil { return (.ioError, 0, true) }
            counters.add(BlockCounter.bytesWritten, length)
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
