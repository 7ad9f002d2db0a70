import CShim
import Foundation
import IPC
@testable import NetWorker
import Testing
import VoltTestSupport
import VirtioCore

/// Data path tests: an in-process NetDevice on a real TAP in a private namespace.
@Suite(.serialized) struct QueueHandlerTests {
    static let base = NetFeature.version1 | NetFeature.eventIdx

    private func harness(_ features: UInt64, queueSize: UInt16 = 64) throws -> DeviceHarness? {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8) for a TAP in a network namespace") else { return nil }
        return try DeviceHarness(features: features, queueSize: queueSize)
    }

    /// The used RX buffers of one frame spanning several (MRG_RXBUF), in used order.
    private func receiveSpanning(_ h: DeviceHarness, _ posted: [UInt16: GuestAddress], bytes: Int) throws -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var total = 0
        while total < bytes {
            let used = try #require(try h.waitUsed(0))
            chunks.append(try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length)))
            total += Int(used.length)
        }
        return chunks
    }

    @Test func txFramesReachTheTap() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        for i in 0..<3 {
            let frame = DeviceHarness.frame("VOLT-NET-TX \(i)", length: 60 + 100 * i)
            // Header and frame split over three buffers the second time.
            let pieces = i == 1 ? [5, 7 + 20, frame.count - 20] : nil
            let head = try h.guestSend([UInt8](repeating: 0, count: 12) + frame, pieces: pieces)
            let got = h.peerReceive()
            #expect(got == frame, "frame \(i) arrived intact")
            let used = try h.waitUsed(1)
            #expect(used?.id == UInt32(head))
            #expect(used?.length == 0)
        }
        let m = h.metrics()
        #expect(m.txFrames == 3)
        #expect(m.txBytes == UInt64(60 + 160 + 260))
    }

    @Test func rxFramesReachTheGuestWithoutMergeable() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        let posted = try h.postRX(count: 4, size: 1526)
        usleep(50_000)
        for i in 0..<3 {
            let frame = DeviceHarness.frame("VOLT-NET-RX \(i)", length: 60 + 500 * i)
            #expect(h.peerSend(frame))
            let used = try #require(try h.waitUsed(0))
            #expect(used.length == UInt32(12 + frame.count))
            let address = try #require(posted[UInt16(used.id)])
            let bytes = try h.map.read(at: address, count: Int(used.length))
            #expect(Array(bytes[12...]) == frame)
            #expect(bytes[10] == 1 && bytes[11] == 0, "num_buffers = 1")
            #expect(bytes[0] == 0, "no checksum flags without GUEST_CSUM")
        }
        #expect(h.metrics().rxFrames == 3)
    }

    /// RX chains the worker took before a SET_MEM_TABLE point into the old mapping; the
    /// worker's RX cache keeps that map, so a frame read into them after the change lands
    /// in guest memory (the same memfd) instead of in unmapped memory.
    @Test func rxBuffersTakenBeforeAMemoryTableChangeStillReceive() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        var posted = try h.postRX(count: 4, size: 1526)
        usleep(50_000)
        // A new mapping of the same memory: the device drops its old map and rebuilds the rings.
        try h.backend.setMemoryTable([IPC.MemoryRegionDescriptor(
            region: MemoryRegion(guestAddress: 0, size: DeviceHarness.memorySize, userAddress: h.file.userAddress(atOffset: 0), mmapOffset: 0),
            fd: OwnedFD(taking: dup(h.file.fd.rawValue)))])
        for i in 0..<6 {
            // The last two go into buffers offered after the change.
            if i == 4 { posted.merge(try h.postRX(count: 2, size: 1526)) { $1 } }
            let frame = DeviceHarness.frame("VOLT-NET-REMAP \(i)", length: 200)
            #expect(h.peerSend(frame))
            let used = try #require(try h.waitUsed(0))
            let bytes = try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length))
            #expect(Array(bytes[12...]) == frame, "frame \(i) arrived intact")
        }
        #expect(h.metrics().rxFrames == 6)
    }

    /// A driver may split the header over descriptors (2.7.4.1): the frame is read into
    /// the chain as laid out and num_buffers is written where it falls.
    @Test func rxHeaderSplitOverBuffers() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        let (a, b) = (h.allocate(5), h.allocate(1521))
        let head = try h.rx.addChain([DriverBuffer(a, length: 5, writable: true), DriverBuffer(b, length: 1521, writable: true)])
        try h.rx.publish()
        h.kick(0)
        usleep(50_000)
        let frame = DeviceHarness.frame("VOLT-NET-SPLIT", length: 300)
        #expect(h.peerSend(frame))
        let used = try #require(try h.waitUsed(0))
        #expect(used.id == UInt32(head) && used.length == UInt32(12 + frame.count))
        let bytes = try h.map.read(at: a, count: 5) + h.map.read(at: b, count: Int(used.length) - 5)
        #expect(Array(bytes[12...]) == frame)
        #expect(bytes[10] == 1 && bytes[11] == 0, "num_buffers = 1, written across the split")
        #expect(bytes[0] == 0, "no checksum flags without GUEST_CSUM")
    }

    @Test func mergeableRxSpansSeveralBuffers() throws {
        guard let h = try harness(Self.base | NetFeature.mrgRxbuf) else { return }
        defer { h.close() }
        let posted = try h.postRX(count: 16, size: 256)
        usleep(50_000)
        let frame = DeviceHarness.frame("VOLT-NET-RX big", length: 1000)
        #expect(h.peerSend(frame))
        let chunks = try receiveSpanning(h, posted, bytes: 12 + frame.count)
        #expect(chunks.count == 4, "1012 bytes in 256-byte buffers")
        #expect(chunks[0][10] == 4 && chunks[0][11] == 0, "num_buffers = 4")
        #expect(Array(chunks.joined().dropFirst(12)) == frame)
        // A small frame then uses exactly one buffer.
        let small = DeviceHarness.frame("VOLT-NET-RX small")
        #expect(h.peerSend(small))
        let used = try #require(try h.waitUsed(0))
        let bytes = try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length))
        #expect(bytes[10] == 1)
        #expect(Array(bytes[12...]) == small)
    }

    @Test func withoutMergeableTooBigFrameIsDroppedNotTruncated() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        let posted = try h.postRX(count: 2, size: 256)
        usleep(50_000)
        #expect(h.peerSend(DeviceHarness.frame("VOLT-NET-RX too big", length: 1000)))
        let small = DeviceHarness.frame("VOLT-NET-RX fits")
        #expect(h.peerSend(small))
        let used = try #require(try h.waitUsed(0))
        #expect(used.length == UInt32(12 + small.count), "the big frame was not delivered cut")
        let bytes = try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length))
        #expect(Array(bytes[12...]) == small)
        #expect(h.metrics().rxDroppedTooBig == 1)
    }

    /// MRG_RXBUF: a frame larger than the buffers offered so far waits (read from the
    /// TAP, kept by the worker) until the guest offers enough, then spans them in order.
    @Test func mergeableFrameWaitsForEnoughBuffers() throws {
        guard let h = try harness(Self.base | NetFeature.mrgRxbuf) else { return }
        defer { h.close() }
        var posted = try h.postRX(count: 2, size: 256)
        usleep(50_000)
        let frame = DeviceHarness.frame("VOLT-NET-RX pending", length: 1000)
        #expect(h.peerSend(frame))
        usleep(200_000)
        #expect(try h.rx.usedIndex() == 0, "512 bytes offered, 1012 needed: nothing used yet")
        for (k, v) in try h.postRX(count: 4, size: 256) { posted[k] = v }
        let chunks = try receiveSpanning(h, posted, bytes: 12 + frame.count)
        #expect(chunks.count == 4 && chunks[0][10] == 4, "num_buffers = 4")
        #expect(Array(chunks.joined().dropFirst(12)) == frame)
        #expect(h.metrics().rxFrames == 1)
    }

    @Test func backPressureHoldsFramesInTheTapUntilBuffersArrive() throws {
        guard let h = try harness(Self.base | NetFeature.mrgRxbuf) else { return }
        defer { h.close() }
        let frames = (0..<5).map { DeviceHarness.frame("VOLT-NET-RX wait \($0)", length: 100 + $0) }
        for f in frames { #expect(h.peerSend(f)) }
        usleep(200_000)
        #expect(h.metrics().rxFrames == 0)
        #expect(h.metrics().rxDroppedNoBuffers == 0)
        // Two buffers first, then the rest: every frame arrives, in order, whole.
        var posted = try h.postRX(count: 2, size: 2048)
        var got: [[UInt8]] = []
        for _ in 0..<2 {
            let used = try #require(try h.waitUsed(0))
            got.append(Array(try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length)).dropFirst(12)))
        }
        usleep(100_000)
        #expect(try h.rx.usedIndex() == 2, "nothing more without buffers")
        posted = try h.postRX(count: 8, size: 2048)
        for _ in 0..<3 {
            let used = try #require(try h.waitUsed(0))
            got.append(Array(try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length)).dropFirst(12)))
        }
        #expect(got == frames)
        let m = h.metrics()
        #expect(m.rxFrames == 5)
        #expect(m.rxDroppedTooBig == 0 && m.rxDroppedNoBuffers == 0)
    }

    @Test func malformedTxChainsAreDroppedCountedAndReturned() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        // 1. Shorter than the virtio_net_hdr.
        let short = h.allocate(8)
        let h1 = try h.tx.addChain([DriverBuffer(short, length: 8)])
        // 2. A buffer outside guest memory.
        let h2 = try h.tx.addChain([DriverBuffer(GuestAddress(DeviceHarness.memorySize - 4), length: 100)])
        // 3. A descriptor whose next points at itself.
        let loopHead = h.tx.nextFreeDescriptor
        try h.tx.writeDescriptor(index: loopHead, address: h.allocate(64), length: 64, flags: .next, next: loopHead)
        h.tx.nextFreeDescriptor &+= 1
        try h.tx.offer(head: loopHead)
        // 4. A valid frame after them.
        let frame = DeviceHarness.frame("VOLT-NET-TX after junk")
        let good = h.allocate(72)
        try h.map.write([UInt8](repeating: 0, count: 12) + frame, at: good)
        let h4 = try h.tx.addChain([DriverBuffer(good, length: 72)])
        try h.tx.publish()
        h.kick(1)
        var returned: [UInt32] = []
        for _ in 0..<4 { if let u = try h.waitUsed(1) { returned.append(u.id) } }
        #expect(Set(returned) == Set([UInt32(h1), UInt32(h2), UInt32(loopHead), UInt32(h4)]))
        #expect(h.peerReceive() == frame)
        let m = h.metrics()
        #expect(m.txDroppedMalformed == 3)
        #expect(m.txFrames == 1)
    }

    @Test func tapOffloadFollowsAckedGuestFeatures() throws {
        guard let h = try harness(Self.base) else { return }
        defer { h.close() }
        let offered = h.net.features
        #expect(offered & NetFeature.guestCsum != 0, "this host's TAP takes TUN_F_CSUM")
        #expect(h.net.appliedOffload == 0)
        try h.backend.setFeatures(Self.base | NetFeature.guestCsum | NetFeature.guestTSO4)
        #expect(h.net.appliedOffload == UInt32(VOLT_TUN_F_CSUM | VOLT_TUN_F_TSO4))
        try h.backend.setFeatures(Self.base | (offered & (NetFeature.guestCsum | NetFeature.guestTSO4 | NetFeature.guestTSO6 | NetFeature.guestECN | NetFeature.guestUFO)))
        var all = UInt32(VOLT_TUN_F_CSUM | VOLT_TUN_F_TSO4 | VOLT_TUN_F_TSO6 | VOLT_TUN_F_TSO_ECN)
        if offered & NetFeature.guestUFO != 0 { all |= UInt32(VOLT_TUN_F_UFO) }
        #expect(h.net.appliedOffload == all)
        // TSO without GUEST_CSUM is invalid (5.1.3.1): nothing is offloaded.
        try h.backend.setFeatures(Self.base | NetFeature.guestTSO4)
        #expect(h.net.appliedOffload == 0)
        // Read back from the kernel: with offloads off, re-applying 0 succeeds and TSO
        // alone is refused by the TAP itself.
        #expect(h.net.taps[0].setOffload(UInt32(VOLT_TUN_F_TSO4)) < 0)
    }
}
