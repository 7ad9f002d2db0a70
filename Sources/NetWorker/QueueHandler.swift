import CShim
import Glibc
import IPC
import VirtioCore

/// struct virtio_net_hdr_v1 (virtio 1.2, 5.1.6): 12 bytes with VERSION_1, whatever MRG_RXBUF says.
enum NetHeader {
    static let size = 12
    static let numBuffersOffset = 10
    static let flagsOffset = 0
}

/// The data path of one queue pair: TX chains to the TAP with writev, TAP frames into RX
/// chains with readv, both straight from/to guest memory. Not thread-safe: the pair's
/// event loop calls it with the pair lock held. Guest mistakes drop one packet, are
/// counted, and the chain goes back to the guest; nothing here traps on guest input.
final class QueueHandler {
    /// Largest frame the TAP can hand over, vnet header included, with room to spare
    /// (64 KiB GSO frames plus headers): a read that fills this much might be truncated.
    static let maxFrame = 128 * 1024
    /// readv/writev take at most IOV_MAX (1024) vectors.
    static let maxIovecs = 1024

    let pairIndex: Int
    let tap: Tap
    var metrics = Metrics()
    /// Injected faults (`--fault`), shared by the pairs; empty normally.
    let faults: FaultInjector

    var rx: Virtqueue?
    var tx: Virtqueue?
    var rxRunning = false
    var txRunning = false
    var rxCall: OwnedFD?
    var txCall: OwnedFD?
    /// VIRTIO_NET_F_MRG_RXBUF acked: a frame may span several RX chains.
    var mergeable = false
    /// VIRTIO_NET_F_GUEST_CSUM acked: the TAP's checksum flags are passed to the guest.
    var guestCsum = false
    /// The pair's TAP queue is attached (multiqueue: VQ_PAIRS_SET may detach it).
    var tapAttached = true

    /// RX chains taken from the ring and not yet used, with their avail index.
    /// RX chains taken from the ring, with their guest-memory iovecs computed once when
    /// cached (rebuilding them for every read dominated RX with MRG_RXBUF).
    private(set) var rxCache: [(chain: DescriptorChain, availIndex: UInt16, iovecs: [iovec])] = []
    /// A frame read from the TAP that did not fit the buffers offered then (MRG_RXBUF only).
    private(set) var pendingFrame: [UInt8]?
    /// The guest offered no RX buffers: the TAP is not polled until an RX kick.
    private(set) var rxStarved = false
    /// writev said EAGAIN: TX waits for the TAP to be writable.
    private(set) var txBlocked = false
    /// The TAP failed on read (e.g. the interface was deleted): RX stops.
    private(set) var tapFailed = false

    private let bounce: UnsafeMutableRawPointer
    private let header: UnsafeMutableRawPointer

    init(pairIndex: Int, tap: Tap, faults: FaultInjector = FaultInjector([])) {
        self.faults = faults
        self.pairIndex = pairIndex
        self.tap = tap
        bounce = .allocate(byteCount: Self.maxFrame, alignment: 16)
        header = .allocate(byteCount: NetHeader.size, alignment: 16)
    }

    deinit {
        bounce.deallocate()
        header.deallocate()
    }

    /// Whether the event loop should watch the TAP for input / output.
    var wantsTapInput: Bool { rxRunning && rx != nil && tapAttached && !tapFailed && !rxStarved }
    var wantsTapOutput: Bool { txRunning && tx != nil && txBlocked }

    /// The TAP became writable again.
    func tapWritable() { txBlocked = false }

    /// The TAP reported an error or hang-up (e.g. the interface was deleted): stop using it.
    func tapBroken() { tapFailed = true }

    /// An RX kick: buffers may have arrived.
    func rxKicked() { rxStarved = false }

    // MARK: - TX

    /// Sends up to `budget` TX chains. Returns true if more work is left (budget spent).
    func processTX(budget: Int = 256) -> Bool {
        guard txRunning, !txBlocked, var q = tx else { return false }
        var more = false
        var processed = 0
        q.disableNotifications()
        loop: while true {
            if processed >= budget { more = true; break }
            let chain: DescriptorChain
            do {
                guard let c = try q.popAvailable() else {
                    // Ask for kicks again, then re-check: a chain added meanwhile sends none.
                    if try q.enableNotifications() { q.disableNotifications(); continue }
                    break
                }
                chain = c
            } catch {
                if case let .malformedChain(head, _) = error {
                    metrics.txDroppedMalformed += 1
                    returnChain(&q, head: head, length: 0)
                    processed += 1
                    continue
                }
                // avail.idx jumped: the ring is broken; stop using it until restarted.
                logLine("pair \(pairIndex) TX queue stopped: \(error)")
                txRunning = false
                break
            }
            processed += 1
            if faults.dropPercent > 0, faults.roll(faults.dropPercent) {
                // drop,percent=P: the frame never reaches the TAP.
                metrics.faultsInjected += 1
                returnChain(&q, head: chain.head, length: 0)
                continue
            }
            let corrupt = faults.corruptPercent > 0 && faults.roll(faults.corruptPercent)
            switch transmit(chain, corrupt: corrupt) {
            case let .sent(bytes):
                metrics.txFrames += 1
                metrics.txBytes += UInt64(bytes - NetHeader.size)
                if corrupt { metrics.faultsInjected += 1 }
                faults.completed(1)
            case .malformed:
                metrics.txDroppedMalformed += 1
            case .tapError:
                metrics.txDroppedTapError += 1
            case .again:
                // Put the chain back (it is the last one taken) and wait for EPOLLOUT.
                q.nextAvail &-= 1
                txBlocked = true
                break loop
            }
            returnChain(&q, head: chain.head, length: 0)
        }
        notify(&q, txCall)
        tx = q
        return more
    }

    enum TransmitOutcome { case sent(Int), malformed, tapError, again }

    /// `corrupt`: send a copy with one payload byte flipped (`--fault corrupt`).
    func transmit(_ chain: DescriptorChain, corrupt: Bool = false) -> TransmitOutcome {
        // The header must be there (5.1.6.2); the TAP would also refuse it.
        guard chain.readableLength >= UInt32(NetHeader.size), chain.readableLength <= UInt32(Self.maxFrame) else { return .malformed }
        guard chain.readableCount <= Self.maxIovecs else { return .malformed }
        var copy = iovec(iov_base: bounce, iov_len: 0)
        if corrupt {
            copy.iov_len = chain.copyFromReadable(into: UnsafeMutableRawBufferPointer(start: bounce, count: Self.maxFrame))
            Self.flipByte(in: [copy], frameLength: copy.iov_len)
        }
        while true {
            let n = corrupt ? volt_writev(tap.fd.rawValue, &copy, 1)
                : chain.withIovecs(writable: false) { v in volt_writev(tap.fd.rawValue, v.baseAddress, CInt(v.count)) }
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
    func processRX(budget: Int = 64) -> Bool {
        guard rxRunning, tapAttached, !tapFailed, var q = rx else { return false }
        var more = false
        var delivered = 0
        loop: while true {
            if delivered >= budget { more = true; break }
            if pendingFrame != nil {
                if !fillCache(&q) { break }
                switch deliverPending(&q) {
                case .delivered: delivered += 1; continue
                case .dropped: continue
                case .needBuffers:
                    if waitForBuffers(&q) { continue }
                    break loop
                }
            }
            if !fillCache(&q) { break }
            if rxCache.isEmpty {
                if waitForBuffers(&q) { continue }
                break
            }
            rxStarved = false
            q.disableNotifications()
            switch receive(&q) {
            case .empty: break loop
            case .delivered: delivered += 1
            case .dropped, .pending: continue
            case let .failed(e):
                logLine("pair \(pairIndex): reading TAP \(tap.name) failed: \(errnoText(e)); RX stops")
                tapFailed = true
                break loop
            }
        }
        notify(&q, rxCall)
        rx = q
        return more
    }

    /// No buffers: ask for a kick and stop polling the TAP. True if buffers arrived
    /// meanwhile (the caller retries at once: no kick comes for them).
    private func waitForBuffers(_ q: inout Virtqueue) -> Bool {
        do {
            if try q.enableNotifications() { return true }
        } catch {
            logLine("pair \(pairIndex) RX queue stopped: \(error)")
            rxRunning = false
            return false
        }
        rxStarved = true
        return false
    }

    /// Takes available RX chains into the cache: one without MRG_RXBUF; with it, enough
    /// for the largest frame. Malformed chains go straight back. False if the ring broke.
    private func fillCache(_ q: inout Virtqueue) -> Bool {
        var cached = rxCache.reduce(0) { $0 + Int($1.chain.writableLength) }
        while mergeable ? (cached < Self.maxFrame && rxCache.count < Int(q.size)) : rxCache.isEmpty {
            let index = q.nextAvail
            do {
                guard let chain = try q.popAvailable() else { return true }
                // Each RX buffer holds at least the header (5.1.6.3.1); readv needs few iovecs.
                guard chain.writableLength >= UInt32(NetHeader.size), chain.writable.count < Self.maxIovecs - 2 else {
                    metrics.rxMalformedChains += 1
                    returnChain(&q, head: chain.head, length: 0)
                    continue
                }
                rxCache.append((chain, index, chain.writableIovecs()))
                cached += Int(chain.writableLength)
            } catch {
                if case let .malformedChain(head, _) = error {
                    metrics.rxMalformedChains += 1
                    returnChain(&q, head: head, length: 0)
                    continue
                }
                logLine("pair \(pairIndex) RX queue stopped: \(error)")
                rxRunning = false
                return false
            }
        }
        return true
    }

    enum ReceiveOutcome { case empty, delivered, dropped, pending, failed(Int32) }

    /// One readv from the TAP: the header into a local copy (patched, then copied), the
    /// frame into the cached chains, and whatever does not fit into the bounce buffer, so
    /// the kernel never truncates a frame silently.
    private func receive(_ q: inout Virtqueue) -> ReceiveOutcome {
        var iovecs: [iovec] = [iovec(iov_base: header, iov_len: NetHeader.size)]
        iovecs.reserveCapacity(Self.maxIovecs)
        var chainsInRead = 0
        var guestSpace = 0
        for (i, entry) in rxCache.enumerated() {
            if i > 0 && !mergeable { break }
            var v = entry.iovecs
            if iovecs.count + v.count + 1 > Self.maxIovecs { break }
            if i == 0 { Self.skip(NetHeader.size, in: &v) }
            iovecs += v
            guestSpace += Int(entry.chain.writableLength)
            chainsInRead += 1
        }
        iovecs.append(iovec(iov_base: bounce, iov_len: Self.maxFrame))
        let capacity = guestSpace + Self.maxFrame
        var n: Int
        repeat {
            n = withExtendedLifetime(rxCache) {
                iovecs.withUnsafeBufferPointer { Int(volt_readv(tap.fd.rawValue, $0.baseAddress, CInt($0.count))) }
            }
        } while n == -Int(EINTR)
        if n == -Int(EAGAIN) { return .empty }
        if n < 0 { return .failed(Int32(-n)) }
        if n == 0 { return .empty }
        if n < NetHeader.size || n >= capacity {
            // No room for a header, or the read may have been cut: never deliver it.
            metrics.rxDroppedTooBig += 1
            return .dropped
        }
        if faults.dropPercent > 0, faults.roll(faults.dropPercent) {
            // drop,percent=P: the frame is read and discarded; the buffers stay cached.
            metrics.faultsInjected += 1
            return .dropped
        }
        if faults.corruptPercent > 0, faults.roll(faults.corruptPercent) {
            Self.flipByte(in: iovecs, frameLength: n)
            metrics.faultsInjected += 1
        }
        faults.completed(1)
        patchHeaderFlags()
        if n <= guestSpace {
            deliver(&q, frameLength: n, chains: chainsInRead) { chain in
                chain.copyToWritable(offset: 0, from: UnsafeRawBufferPointer(start: header, count: NetHeader.size))
            }
            return .delivered
        }
        guard mergeable else {
            // Without MRG_RXBUF a frame uses exactly one chain (5.1.6.3.1): drop, keep the chain.
            metrics.rxDroppedTooBig += 1
            return .dropped
        }
        // Keep it until the guest offers enough buffers.
        var frame = [UInt8](repeating: 0, count: n)
        frame.withUnsafeMutableBytes { out in
            var done = 0
            for v in iovecs where done < n {
                let k = min(v.iov_len, n - done)
                if k > 0, let base = v.iov_base { (out.baseAddress! + done).copyMemory(from: base, byteCount: k) }
                done += k
            }
        }
        pendingFrame = frame
        return .pending
    }

    private enum PendingOutcome { case delivered, dropped, needBuffers }

    /// Copies the waiting frame into cached chains once they can hold it.
    private func deliverPending(_ q: inout Virtqueue) -> PendingOutcome {
        guard var frame = pendingFrame else { return .delivered }
        let space = rxCache.reduce(0) { $0 + Int($1.chain.writableLength) }
        if space < frame.count {
            // Every descriptor is already ours: it can never fit.
            if rxCache.count >= Int(q.size) {
                metrics.rxDroppedTooBig += 1
                pendingFrame = nil
                return .dropped
            }
            return .needBuffers
        }
        pendingFrame = nil
        var offset = 0
        var used = 0
        while offset < frame.count {
            offset += Int(rxCache[used].chain.writableLength)
            used += 1
        }
        let count = UInt16(clamping: used)
        frame[NetHeader.numBuffersOffset] = UInt8(count & 0xff)
        frame[NetHeader.numBuffersOffset + 1] = UInt8(count >> 8)
        offset = 0
        frame.withUnsafeBytes { bytes in
            for i in 0..<used {
                let chain = rxCache[i].chain
                let k = min(Int(chain.writableLength), frame.count - offset)
                _ = chain.copyToWritable(offset: 0, from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + k)]))
                offset += k
            }
        }
        finish(&q, frameLength: frame.count, chains: used)
        return .delivered
    }

    /// Sets num_buffers in the local header and writes it into the first chain, then
    /// returns the chains the frame filled.
    private func deliver(_ q: inout Virtqueue, frameLength n: Int, chains: Int,
                         writeHeader: (DescriptorChain) -> Int) {
        var used = 0
        var covered = 0
        while covered < n && used < chains {
            covered += Int(rxCache[used].chain.writableLength)
            used += 1
        }
        // 5.1.6.4: num_buffers = chains used (1 without MRG_RXBUF).
        let count = UInt16(clamping: used)
        header.storeBytes(of: count.littleEndian, toByteOffset: NetHeader.numBuffersOffset, as: UInt16.self)
        _ = writeHeader(rxCache[0].chain)
        finish(&q, frameLength: n, chains: used)
    }

    private func finish(_ q: inout Virtqueue, frameLength n: Int, chains used: Int) {
        var remaining = n
        for i in 0..<used {
            let chain = rxCache[i].chain
            let k = min(Int(chain.writableLength), remaining)
            remaining -= k
            returnChain(&q, head: chain.head, length: UInt32(k))
        }
        rxCache.removeFirst(used)
        metrics.rxFrames += 1
        metrics.rxBytes += UInt64(n - NetHeader.size)
    }

    /// Without GUEST_CSUM the device sets no checksum flags (5.1.6.4.1): the TAP only
    /// reports DATA_VALID then, which the guest did not ask for.
    private func patchHeaderFlags() {
        if !guestCsum { header.storeBytes(of: UInt8(0), toByteOffset: NetHeader.flagsOffset, as: UInt8.self) }
    }

    /// `corrupt` faults: inverts the middle byte of the frame after the virtio-net header
    /// (`frameLength` bytes, header included, laid out over `iovecs`).
    static func flipByte(in iovecs: [iovec], frameLength: Int) {
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

    /// Removes the first `count` bytes from an iovec list.
    static func skip(_ count: Int, in v: inout [iovec]) {
        var left = count
        while left > 0, !v.isEmpty {
            if v[0].iov_len <= left {
                left -= v[0].iov_len
                v.removeFirst()
            } else {
                v[0].iov_base = v[0].iov_base.map { $0 + left }
                v[0].iov_len -= left
                left = 0
            }
        }
    }

    // MARK: - Stopping

    /// Gives back what the RX side holds: the next avail index to report. Cached chains
    /// that form the tail of the consumed range are un-consumed; otherwise (a malformed
    /// chain was returned in between) they are returned empty. A waiting frame is dropped.
    func releaseRX() {
        guard var q = rx else { rxCache.removeAll(); return }
        if pendingFrame != nil {
            metrics.rxDroppedNoBuffers += 1
            pendingFrame = nil
        }
        if let first = rxCache.first {
            let contiguous = rxCache.enumerated().allSatisfy { $0.element.availIndex == first.availIndex &+ UInt16($0.offset) }
                && first.availIndex &+ UInt16(rxCache.count) == q.nextAvail
            if contiguous {
                q.nextAvail = first.availIndex
            } else {
                for entry in rxCache { returnChain(&q, head: entry.chain.head, length: 0) }
                notify(&q, rxCall)
            }
        }
        rxCache.removeAll()
        rx = q
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

    private func notify(_ q: inout Virtqueue, _ call: OwnedFD?) {
        q.publishUsed()
        if q.needsNotification(), let call {
            signalEventFD(call.rawValue)
            metrics.interrupts += 1
        }
    }
}
