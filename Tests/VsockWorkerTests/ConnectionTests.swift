import Testing
@testable import VsockWorker

/// The connection state machine: what each guest packet means in each state, and the
/// credit accounting both ways, including guests that lie about it.
@Suite struct ConnectionTests {
    static let key = ConnectionKey(local: 1 << 30, peer: 52)

    static func packet(_ op: UInt16, len: UInt32 = 0, flags: UInt32 = 0, bufAlloc: UInt32 = 4096, fwdCnt: UInt32 = 0) -> VsockHeader {
        VsockHeader(srcCID: 3, dstCID: 2, srcPort: key.peer, dstPort: key.local, op: op, len: len, flags: flags,
                    bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    static func established() -> Connection {
        var c = Connection(key: key, fd: -1, bufAlloc: 1000, hostInitiated: true, deadline: 1)
        #expect(c.takeOwed()?.op == VsockOp.request)
        #expect(c.receive(packet(VsockOp.response)) == .accepted)
        return c
    }

    @Test func hostInitiatedOwesARequestThenWaitsForTheAnswer() {
        var c = Connection(key: Self.key, fd: -1, bufAlloc: 1000, hostInitiated: true, deadline: 5)
        #expect(c.state == .connecting && c.deadline == 5 && c.owed == .request)
        #expect(c.takeOwed()! == (VsockOp.request, 0))
        #expect(c.takeOwed() == nil)
        #expect(c.receive(Self.packet(VsockOp.response, bufAlloc: 8192)) == .accepted)
        #expect(c.state == .established && c.deadline == nil && c.peerFree == 8192)
    }

    @Test func guestInitiatedOwesAResponse() {
        var c = Connection(key: Self.key, fd: -1, bufAlloc: 1000, hostInitiated: false)
        #expect(c.state == .established && c.owed == .response)
        #expect(c.takeOwed()! == (VsockOp.response, 0))
    }

    @Test(arguments: [
        // (op while connecting, outcome)
        (VsockOp.rw, true), (VsockOp.request, true), (VsockOp.shutdown, true), (VsockOp.creditRequest, true),
        (VsockOp.creditUpdate, true), (VsockOp.rst, false),
    ])
    func anythingButResponseOrRSTWhileConnectingResets(_ op: UInt16, resets: Bool) {
        var c = Connection(key: Self.key, fd: -1, bufAlloc: 1000, hostInitiated: true, deadline: 1)
        let outcome = c.receive(Self.packet(op))
        if resets { guard case .reset = outcome else { Issue.record("op \(op): \(outcome)"); return } } else { #expect(outcome == .closed) }
    }

    @Test(arguments: [
        // (packet on an established connection, expected outcome kind)
        (packet(VsockOp.rw, len: 10), "forward"),
        (packet(VsockOp.rw, len: 0), "none"),
        (packet(VsockOp.creditUpdate), "none"),
        (packet(VsockOp.creditRequest), "none"),
        (packet(VsockOp.shutdown, flags: ShutdownFlags.receive), "none"),
        (packet(VsockOp.shutdown, flags: ShutdownFlags.send), "endHostWrites"),
        (packet(VsockOp.shutdown, flags: ShutdownFlags.both), "reset"),
        (packet(VsockOp.rst), "closed"),
        (packet(VsockOp.request), "reset"),
        (packet(VsockOp.response), "reset"),
        (packet(VsockOp.rw, len: 1001), "reset"),
        (packet(VsockOp.creditUpdate, fwdCnt: 1), "reset"),
    ])
    func establishedPackets(_ p: VsockHeader, expected: String) {
        var c = Self.established()
        let kind: String
        switch c.receive(p) {
        case .none: kind = "none"
        case .forward: kind = "forward"
        case .accepted: kind = "accepted"
        case .endHostWrites: kind = "endHostWrites"
        case .closed: kind = "closed"
        case .reset: kind = "reset"
        }
        #expect(kind == expected, "op \(p.op) len \(p.len) flags \(p.flags) fwd \(p.fwdCnt)")
    }

    @Test func creditRequestOwesACreditUpdateCarryingOurCounters() {
        var c = Self.established()
        _ = c.receive(Self.packet(VsockOp.creditRequest))
        #expect(c.takeOwed()! == (VsockOp.creditUpdate, 0))
        c.forwarded(300)
        let h = c.header(op: VsockOp.creditUpdate, guestCID: 3)
        #expect(h.bufAlloc == 1000 && h.fwdCnt == 300 && h.srcCID == 2 && h.dstCID == 3 && h.srcPort == Self.key.local && h.dstPort == Self.key.peer)
    }

    @Test func theGuestCannotSendMoreThanItsCredit() {
        var c = Self.established()
        #expect(c.receive(Self.packet(VsockOp.rw, len: 600)) == .forward(600))
        // 600 held (not forwarded): 400 left.
        #expect(c.receive(Self.packet(VsockOp.rw, len: 400)) == .forward(400))
        guard case .reset = c.receive(Self.packet(VsockOp.rw, len: 1)) else { Issue.record("overrun accepted"); return }
    }

    @Test func forwardedBytesGiveCreditBackAndAnUpdateBecomesDue() {
        var c = Self.established()
        #expect(c.receive(Self.packet(VsockOp.rw, len: 1000)) == .forward(1000))
        #expect(!c.creditUpdateDue)
        c.forwarded(1000)
        #expect(c.creditUpdateDue, "a quarter of the buffer was freed since the guest last heard")
        _ = c.header(op: VsockOp.creditUpdate, guestCID: 3)
        #expect(!c.creditUpdateDue)
        #expect(c.receive(Self.packet(VsockOp.rw, len: 1000)) == .forward(1000))
    }

    @Test func hostDataStaysWithinTheGuestsCredit() {
        var c = Self.established()   // the guest gave 4096
        #expect(c.peerFree == 4096 && c.wantsHostData)
        _ = c.header(op: VsockOp.rw, guestCID: 3, len: 4000)
        #expect(c.peerFree == 96)
        _ = c.header(op: VsockOp.rw, guestCID: 3, len: 96)
        #expect(c.peerFree == 0 && !c.wantsHostData, "no credit: the host socket is not read")
        // The guest consumed 2000: credit again.
        #expect(c.receive(Self.packet(VsockOp.creditUpdate, fwdCnt: 2000)) == .none)
        #expect(c.peerFree == 2000)
        // A guest claiming to have consumed more than it was sent is lying.
        guard case .reset = c.receive(Self.packet(VsockOp.creditUpdate, fwdCnt: 4097)) else { Issue.record("lie accepted"); return }
    }

    @Test func aGuestShrinkingItsBufferHasNoCreditRatherThanNegative() {
        var c = Self.established()
        _ = c.header(op: VsockOp.rw, guestCID: 3, len: 3000)
        #expect(c.receive(Self.packet(VsockOp.creditUpdate, bufAlloc: 1000)) == .none)
        #expect(c.peerFree == 0)
    }

    @Test func countersWrapAround() {
        var c = Self.established()
        // Move both counters near 2^32 and across it.
        for _ in 0..<5 {
            #expect(c.receive(Self.packet(VsockOp.rw, len: 1000)) == .forward(1000))
            c.forwarded(1000)
        }
        var fwd: UInt32 = 0
        for _ in 0..<3 {
            _ = c.header(op: VsockOp.rw, guestCID: 3, len: 4096)
            fwd &+= 4096
            #expect(c.receive(Self.packet(VsockOp.creditUpdate, fwdCnt: fwd)) == .none)
        }
        #expect(c.peerFree == 4096)
    }

    @Test func guestShutdownStopsReadsAndDataAfterSendShutdownResets() {
        var c = Self.established()
        #expect(c.receive(Self.packet(VsockOp.shutdown, flags: ShutdownFlags.receive)) == .none)
        #expect(!c.wantsHostData, "the guest receives nothing more")
        #expect(c.receive(Self.packet(VsockOp.shutdown, flags: ShutdownFlags.receive)) == .none)
        var d = Self.established()
        #expect(d.receive(Self.packet(VsockOp.shutdown, flags: ShutdownFlags.send)) == .endHostWrites)
        guard case .reset = d.receive(Self.packet(VsockOp.rw, len: 1)) else { Issue.record("data after SHUTDOWN(SEND)"); return }
        var e = Self.established()
        _ = e.receive(Self.packet(VsockOp.shutdown, flags: ShutdownFlags.send))
        guard case .reset = e.receive(Self.packet(VsockOp.shutdown, flags: ShutdownFlags.receive)) else {
            Issue.record("both directions shut: RST expected"); return
        }
    }

    @Test func byteQueueKeepsOrderAcrossPartialDrains() {
        var q = ByteQueue()
        [UInt8](0..<100).withUnsafeBytes { q.append($0) }
        var out: [UInt8] = []
        q.drain { out += $0.prefix(30); return 30 }
        [UInt8](100..<120).withUnsafeBytes { q.append($0) }
        while !q.isEmpty { q.drain { out += $0.prefix(7); return min(7, $0.count) } }
        #expect(out == Array(0..<120))
    }
}
