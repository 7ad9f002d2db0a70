import CShim
import Glibc
import IPC
import VirtioCore
import WorkerCore

/// struct virtio_net_hdr_v1 (virtio 1.2, 5.1.6): 12 bytes with VERSION_1, whatever MRG_RXBUF says.
enum NetHeader {
    static let size = 12
    static let numBuffersOffset = 10
    static let flagsOffset = 0
}

/// The data path of one queue pair, on its queue thread: TX chains to the TAP with
/// writev, TAP frames into RX chains with readv, both straight from/to guest memory.
/// Its rings are slots 0 (RX) and 1 (TX) of the thread's context (pair 0 also has the
/// control queue, slot 2). The framework calls it with the thread's lock held. Guest
/// mistakes drop one packet, are counted, and the chain goes back to the guest; nothing
/// here traps on guest input.
final class QueueHandler: QueueThreadHandler {
    /// Largest frame the TAP can hand over, vnet header included, with room to spare
    /// (64 KiB GSO frames plus headers): a read that fills this much might be truncated.
    static let maxFrame = 128 * 1024
    /// readv/writev take at most IOV_MAX (1024) vectors.
    static let maxIovecs = 1024
    static let rxSlot = 0, txSlot = 1, controlSlot = 2
    /// The tag of the TAP among the fds the thread waits on (its only device fd).
    static let tapTag: UInt32 = 0

    let pairIndex: Int
    let tap: Tap
    /// This turn's counts, moved into the thread's counters after each turn.
    var stats = NetStats()
    /// Injected faults (`--fault`), shared by the pairs; empty normally.
    let faults: FaultInjector
    /// `drop` / `corrupt` percentages, looked up once (0 normally).
    private let dropPercent: Int
    private let corruptPercent: Int
    /// Pair 0 only, when the device has a control queue.
    let control: ControlQueue?

    /// VIRTIO_NET_F_MRG_RXBUF acked: a frame may span several RX chains.
    var mergeable = false
    /// VIRTIO_NET_F_GUEST_CSUM acked: the TAP's checksum flags are passed to the guest.
    var guestCsum = false
    /// The pair's TAP queue is attached (multiqueue: VQ_PAIRS_SET may detach it).
    var tapAttached = true
    /// The poll events the TAP is watched for now (UInt32.max: no longer watched).
    private var tapEvents: UInt32 = 0

    /// RX chains taken from the ring and not yet used. Usually one: a frame is read into
    /// the first chain (and a bounce buffer for any overflow); more are taken only for
    /// frames that span buffers (MRG_RXBUF). `processRX` works on it as a local.
    private var rxCache = RXChainCache()
    /// A frame read from the TAP that did not fit the buffers offered then (MRG_RXBUF only).
    private(set) var pendingFrame: [UInt8]?
    /// The guest offered no RX buffers: the TAP is not polled until an RX kick.
    private(set) var rxStarved = false
    /// writev said EAGAIN: TX waits for the TAP to be writable.
    private(set) var txBlocked = false
    /// The TAP failed (e.g. the interface was deleted): RX and TX stop.
    private(set) var tapFailed = false

    private let bounce: UnsafeMutableRawPointer
    /// iovecs for one readv/writev: a chain's buffers (at most `maxIovecs`), plus the
    /// bounce buffer on RX. Kept, so a frame builds them without a closure.
    private let iovecs: UnsafeMutableBufferPointer<iovec>
    /// The TAP queue's fd (read once: `tap.fd` is an object).
    private let tapFD: CInt

    init(pairIndex: Int, tap: Tap, control: ControlQueue? = nil, faults: FaultInjector = FaultInjector([])) {
        self.faults = faults
        dropPercent = faults.dropPercent
        corruptPercent = faults.corruptPercent
        self.pairIndex = pairIndex
        self.tap = tap
        self.control = control
        bounce = .allocate(byteCount: Self.maxFrame, alignment: 16)
        iovecs = .allocate(capacity: Self.maxIovecs + 2)
        tapFD = tap.fd.rawValue
    }

    deinit {
        bounce.deallocate()
        iovecs.deallocate()
    }

    // MARK: - The thread's turns

    /// The TAP joins the fds the thread waits on, with no events until a ring wants them.
    func prepare(_ context: inout QueueThreadContext) throws {
        context.watch(tapFD, tag: Self.tapTag, events: 0)
    }

    func featuresAcked(_ features: UInt64) {
        mergeable = features & NetFeature.mrgRxbuf != 0
        guestCsum = features & NetFeature.guestCsum != 0
    }

    func handle(_ context: inout QueueThreadContext) -> Bool {
        // A start or kick of RX may bring buffers; a started TX tries the TAP again.
        if context.wasKicked(Self.rxSlot) { rxStarved = false }
        if context.wasKicked(Self.txSlot) { txBlocked = false }
        for event in context.deviceEvents where event.tag == Self.tapTag {
            if event.events & UInt32(POLLOUT) != 0 { txBlocked = false }
            if event.events & UInt32(POLLERR | POLLHUP | POLLNVAL) != 0, !tapFailed {
                // Reported even with no events asked for: stop watching the fd rather than
                // spin on it.
                WorkerLog.line("pair \(pairIndex): TAP \(tap.name) reported an error; RX and TX stop")
                tapFailed = true
                context.unwatch(tapFD)
                tapEvents = UInt32.max
            }
        }
        if let control, context.rings.count > Self.controlSlot {
            control.process(&context.rings[Self.controlSlot], &stats, &context.counters)
        }
        let txMore = processTX(&context)
        let rxMore = processRX(&context)
        updateTapInterest(&context)
        stats.move(into: &context.counters)
        return txMore || rxMore
    }

    /// Whether the loop should watch the TAP for input / output.
    func wantsTapInput(_ context: QueueThreadContext) -> Bool {
        context.rings[Self.rxSlot].isActive && tapAttached && !tapFailed && !rxStarved
    }

    func wantsTapOutput(_ context: QueueThreadContext) -> Bool {
        context.rings[Self.txSlot].isActive && txBlocked && !tapFailed
    }

    private func updateTapInterest(_ context: inout QueueThreadContext) {
        var wanted: UInt32 = 0
        if wantsTapInput(context) { wanted |= UInt32(POLLIN) }
        if wantsTapOutput(context) { wanted |= UInt32(POLLOUT) }
        guard wanted != tapEvents, tapEvents != UInt32.max else { return }
        if context.setInterest(tapFD, events: wanted) { tapEvents = wanted }
    }

    func ringStopping(_ slot: Int, _ context: inout QueueThreadContext) {
        if slot == Self.rxSlot { releaseRX(&context.rings[Self.rxSlot]) }
    }

    // MARK: - TX

    /// Sends up to `budget` TX chains. Returns true if more work is left (budget spent).
    func processTX(_ context: inout QueueThreadContext, budget: Int = 256) -> Bool {
        guard context.rings[Self.txSlot].isActive, !txBlocked, !tapFailed, var q = context.rings[Self.txSlot].queue else { return false }
        let call = context.rings[Self.txSlot].callFD
        var more = false
        var processed = 0
        q.disableNotifications()
        // Filled in place for each chain (no copy of a chain per frame).
        var chain = DescriptorChain()
        loop: while true {
            if processed >= budget { more = true; break }
            do {
                guard try q.popAvailable(into: &chain) else {
                    // Ask for kicks again, then re-check: a chain added meanwhile sends none.
                    if try q.enableNotifications() { q.disableNotifications(); continue }
                    break
                }
            } catch {
                if case let .malformedChain(head, _) = error {
                    stats.txDroppedMalformed += 1
                    returnChain(&q, head: head, length: 0)
                    processed += 1
                    continue
                }
                // avail.idx jumped: the ring is broken; stop using it until restarted.
                context.rings[Self.txSlot].fail(error, counters: &context.counters)
                break
            }
            processed += 1
            if dropPercent > 0, faults.roll(dropPercent) {
                // drop,percent=P: the frame never reaches the TAP.
                stats.faultsInjected += 1
                returnChain(&q, head: chain.head, length: 0)
                continue
            }
            let corrupt = corruptPercent > 0 && faults.roll(corruptPercent)
            switch transmit(chain, corrupt: corrupt) {
            case let .sent(bytes):
                stats.txFrames += 1
                stats.txBytes += UInt64(bytes - NetHeader.size)
                if corrupt { stats.faultsInjected += 1 }
                faults.completed(1)
            case .malformed:
                stats.txDroppedMalformed += 1
            case .tapError:
                stats.txDroppedTapError += 1
            case .again:
                // Put the chain back (it is the last one taken) and wait for EPOLLOUT.
                q.nextAvail &-= 1
                txBlocked = true
                break loop
            }
            returnChain(&q, head: chain.head, length: 0)
        }
        notify(&q, call)
        context.rings[Self.txSlot].queue = q
        return more
    }

    enum TransmitOutcome { case sent(Int), malformed, tapError, again }

    /// `corrupt`: send a copy with one payload byte flipped (`--fault corrupt`).
    func transmit(_ chain: borrowing DescriptorChain, corrupt: Bool = false) -> TransmitOutcome {
        // The header must be there (5.1.6.2); the TAP would also refuse it.
        guard chain.readableLength >= UInt32(NetHeader.size), chain.readableLength <= UInt32(Self.maxFrame) else { return .malformed }
        guard chain.readableCount <= Self.maxIovecs else { return .malformed }
        var copy = iovec(iov_base: bounce, iov_len: 0)
        if corrupt {
            copy.iov_len = chain.copyFromReadable(into: UnsafeMutableRawBufferPointer(start: bounce, count: Self.maxFrame))
            Self.flipByte(in: [copy], frameLength: copy.iov_len)
        }
        let count = corrupt ? 0 : chain.fillIovecs(writable: false, into: iovecs)
        while true {
            let n = corrupt ? volt_writev(tapFD, &copy, 1) : volt_writev(tapFD, iovecs.baseAddress, CInt(count))
            if n >= 0 { return .sent(Int(n)) }
            switch Int32(-n) {
            case EINTR: continue
            case EAGAIN: return .again
            // Bad GSO/checksum fields in the vnet header, or an oversized frame.
            case EINVAL, EMSGSIZE, EFAULT: return .malformed
            default: return .tapError
            }
        }
    }

    // MARK: - RX

    /// Moves up to `budget` frames from the TAP into RX buffers. Returns true if more
    /// work is left (budget spent). Stops polling the TAP when buffers run out.
    func processRX(_ context: inout QueueThreadContext, budget: Int = 128) -> Bool {
        guard context.rings[Self.rxSlot].isActive, tapAttached, !tapFailed, var q = context.rings[Self.rxSlot].queue else { return false }
        let call = context.rings[Self.rxSlot].callFD
        var broken: VirtqueueError?
        // The cache is moved out for the batch (swap: no copy of its storage).
        var cache = RXChainCache(capacity: 0)
        swap(&cache, &rxCache)
        defer { swap(&cache, &rxCache) }
        var more = false
        // Dropped frames count too: a flood of bad frames must not keep this pair's
        // thread in RX and starve its TX.
        var handled = 0
        loop: while true {
            if handled >= budget { more = true; break }
            if let frame = pendingFrame {
                if !fillCache(&q, &cache, space: frame.count, &broken) { break }
                switch deliverPending(&q, &cache) {
                case .delivered, .dropped: handled += 1; continue
                case .needBuffers:
                    if waitForBuffers(&q, &broken) { continue }
                    break loop
                }
            }
            if !fillCache(&q, &cache, &broken) { break }
            if cache.isEmpty {
                if waitForBuffers(&q, &broken) { continue }
                break
            }
            rxStarved = false
            q.disableNotifications()
            switch receive(&q, &cache, &broken) {
            case .empty: break loop
            case .delivered, .dropped, .pending: handled += 1
            case let .failed(e):
                WorkerLog.line("pair \(pairIndex): reading TAP \(tap.name) failed: \(errnoText(e)); RX stops")
                tapFailed = true
                break loop
            }
        }
        notify(&q, call)
        context.rings[Self.rxSlot].queue = q
        if let broken { context.rings[Self.rxSlot].fail(broken, counters: &context.counters) }
        return more
    }

    /// No buffers: ask for a kick and stop polling the TAP. True if buffers arrived
    /// meanwhile (the caller retries at once: no kick comes for them).
    private func waitForBuffers(_ q: inout Virtqueue, _ broken: inout VirtqueueError?) -> Bool {
        do {
            if try q.enableNotifications() { return true }
        } catch {
            broken = error
            return false
        }
        rxStarved = true
        return false
    }

    /// Takes available RX chains into the cache until it holds at least one chain and
    /// `space` bytes (or the ring is empty; more than one only with MRG_RXBUF).
    /// Malformed chains go straight back. False if the ring broke.
    private func fillCache(_ q: inout Virtqueue, _ cache: inout RXChainCache, space: Int = 0,
                           _ broken: inout VirtqueueError?) -> Bool {
        while cache.isEmpty || (mergeable && cache.space < space && cache.count < Int(q.size)) {
            do {
                guard try cache.appendNext(from: &q) else { return true }
                // Each RX buffer holds at least the header (5.1.6.3.1); readv needs few iovecs.
                let newest = cache.count - 1
                guard cache.writableLength(newest) >= NetHeader.size, cache.writableCount(newest) < Self.maxIovecs - 2 else {
                    stats.rxMalformedChains += 1
                    returnChain(&q, head: cache.head(newest), length: 0)
                    cache.removeLast()
                    continue
                }
            } catch {
                if case let .malformedChain(head, _) = error {
                    stats.rxMalformedChains += 1
                    returnChain(&q, head: head, length: 0)
                    continue
                }
                broken = error
                return false
            }
        }
        return true
    }

    enum ReceiveOutcome { case empty, delivered, dropped, pending, failed(Int32) }

    /// One readv from the TAP: header and frame into the first cached chain (the guest
    /// sees nothing before the used entry, so its header is patched there), and whatever
    /// does not fit into the bounce buffer, so the kernel never truncates a frame
    /// silently. With MRG_RXBUF the overflow is then copied into further chains (or kept
    /// until the guest offers them).
    private func receive(_ q: inout Virtqueue, _ cache: inout RXChainCache, _ broken: inout VirtqueueError?) -> ReceiveOutcome {
        let firstSpace = cache.writableLength(0)
        let data = cache.fillWritableIovecs(0, into: iovecs, skip: 0)
        iovecs[data] = iovec(iov_base: bounce, iov_len: Self.maxFrame)
        var n = 0
        repeat {
            n = Int(volt_readv(tapFD, iovecs.baseAddress, CInt(data + 1)))
        } while n == -Int(EINTR)
        if n == -Int(EAGAIN) { return .empty }
        if n < 0 { return .failed(Int32(-n)) }
        if n == 0 { return .empty }
        if n < NetHeader.size || n >= firstSpace + Self.maxFrame {
            // No room for a header, or the read may have been cut: never deliver it.
            stats.rxDroppedTooBig += 1
            return .dropped
        }
        if dropPercent > 0, faults.roll(dropPercent) {
            // drop,percent=P: the frame is read and discarded; the buffers stay cached.
            stats.faultsInjected += 1
            return .dropped
        }
        let overflow = max(0, n - firstSpace)
        if corruptPercent > 0, faults.roll(corruptPercent) {
            Self.flipByte(in: UnsafeBufferPointer(start: iovecs.baseAddress, count: data + 1), frameLength: n)
            stats.faultsInjected += 1
        }
        faults.completed(1)
        if !guestCsum { patchFirstChain(&cache, UInt8(0), at: NetHeader.flagsOffset) }
        if overflow == 0 {
            deliver(&q, &cache, frameLength: n, chains: 1)
            return .delivered
        }
        guard mergeable else {
            // Without MRG_RXBUF a frame uses exactly one chain (5.1.6.3.1): drop, keep the chain.
            stats.rxDroppedTooBig += 1
            return .dropped
        }
        // The rest goes into further chains, taken now; if the guest has not offered
        // enough, keep the frame until it does.
        guard fillCache(&q, &cache, space: n, &broken), cache.space >= n else {
            keepPending(cache, frameLength: n, overflow: overflow)
            return .pending
        }
        var offset = 0
        var chains = 1
        while offset < overflow {
            offset += cache.copyToWritable(chains, from: UnsafeRawBufferPointer(start: bounce + offset, count: overflow - offset))
            chains += 1
        }
        deliver(&q, &cache, frameLength: n, chains: chains)
        return .delivered
    }

    /// Copies a frame that did not fit the buffers offered so far out of the first
    /// chain (header included) and the bounce buffer.
    private func keepPending(_ cache: borrowing RXChainCache, frameLength n: Int, overflow: Int) {
        var frame = [UInt8](repeating: 0, count: n)
        frame.withUnsafeMutableBytes { out in
            _ = cache.copyFromWritable(0, into: UnsafeMutableRawBufferPointer(rebasing: out[..<(n - overflow)]))
            (out.baseAddress! + n - overflow).copyMemory(from: bounce, byteCount: overflow)
        }
        pendingFrame = frame
    }

    private enum PendingOutcome { case delivered, dropped, needBuffers }

    /// Copies the waiting frame into cached chains once they can hold it.
    private func deliverPending(_ q: inout Virtqueue, _ cache: inout RXChainCache) -> PendingOutcome {
        guard let frame = pendingFrame else { return .delivered }
        if cache.space < frame.count {
            // Every descriptor is already ours: it can never fit.
            if cache.count >= Int(q.size) {
                stats.rxDroppedTooBig += 1
                pendingFrame = nil
                return .dropped
            }
            return .needBuffers
        }
        pendingFrame = nil
        var offset = 0
        var chains = 0
        frame.withUnsafeBytes { bytes in
            while offset < frame.count {
                let k = min(cache.writableLength(chains), frame.count - offset)
                _ = cache.copyToWritable(chains, from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + k)]))
                offset += k
                chains += 1
            }
        }
        deliver(&q, &cache, frameLength: frame.count, chains: chains)
        return .delivered
    }

    /// Sets num_buffers in the header at the start of the first chain (the frame is in
    /// place), then returns the `chains` the frame filled.
    private func deliver(_ q: inout Virtqueue, _ cache: inout RXChainCache, frameLength n: Int, chains used: Int) {
        // 5.1.6.4: num_buffers = chains used (1 without MRG_RXBUF).
        patchFirstChain(&cache, UInt16(clamping: used).littleEndian, at: NetHeader.numBuffersOffset)
        var remaining = n
        for i in 0..<used {
            let k = min(cache.writableLength(i), remaining)
            remaining -= k
            returnChain(&q, head: cache.head(i), length: UInt32(k))
        }
        cache.removeFirst(used)
        stats.rxFrames += 1
        stats.rxBytes += UInt64(n - NetHeader.size)
    }

    /// Writes `value` at `offset` into the header at the start of the first chain: in
    /// place when its first buffer holds the whole header (what drivers do), else
    /// across buffers. E.g. the flags byte without GUEST_CSUM, where the device sets no
    /// checksum flags (5.1.6.4.1) and the TAP's DATA_VALID must not reach the guest.
    private func patchFirstChain<T: FixedWidthInteger>(_ cache: inout RXChainCache, _ value: T, at offset: Int) {
        if let first = cache.firstBufferOfFirstChain(), first.count >= NetHeader.size {
            first.baseAddress!.storeBytes(of: value, toByteOffset: offset, as: T.self)
        } else {
            _ = withUnsafeBytes(of: value) { cache.copyToWritable(0, offset: offset, from: $0) }
        }
    }

    /// `corrupt` faults: inverts the middle byte of the frame after the virtio-net header
    /// (`frameLength` bytes, header included, laid out over `iovecs`).
    static func flipByte<C: Collection<iovec>>(in iovecs: C, frameLength: Int) {
        guard frameLength > NetHeader.size else { return }
        var at = NetHeader.size + (frameLength - NetHeader.size) / 2
        for v in iovecs {
            if at < v.iov_len, let base = v.iov_base {
                let p = base.assumingMemoryBound(to: UInt8.self) + at
                p.pointee ^= 0xff
                return
            }
            at -= v.iov_len
        }
    }

    // MARK: - Stopping

    /// Gives back what the RX side holds: the next avail index to report. Cached chains
    /// that form the tail of the consumed range are un-consumed; otherwise (a malformed
    /// chain was returned in between) they are returned empty. A waiting frame is dropped.
    func releaseRX(_ ring: inout Ring) {
        guard var q = ring.queue else { rxCache.removeAll(); return }
        if pendingFrame != nil {
            stats.rxDroppedNoBuffers += 1
            pendingFrame = nil
        }
        if !rxCache.isEmpty {
            if rxCache.isContiguous(endingBefore: q.nextAvail) {
                q.nextAvail = rxCache.availIndex(0)
            } else {
                for i in 0..<rxCache.count { returnChain(&q, head: rxCache.head(i), length: 0) }
                notify(&q, ring.callFD)
            }
        }
        rxCache.removeAll()
        ring.queue = q
    }

    // MARK: - Used ring

    private func returnChain(_ q: inout Virtqueue, head: UInt16, length: UInt32) {
        do {
            try q.stageUsed(head: head, length: length)
        } catch .usedRingOverflow {
            q.publishUsed()
            try? q.stageUsed(head: head, length: length)
        } catch {
            // Head past the table (malformed avail entry): nothing can be returned.
        }
    }

    private func notify(_ q: inout Virtqueue, _ call: CInt?) {
        q.publishUsed()
        if q.needsNotification(), let call {
            EventFD.signal(call)
            stats.interrupts += 1
        }
    }
}
