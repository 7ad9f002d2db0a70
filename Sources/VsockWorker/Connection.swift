/// One stream connection between a guest port and a host Unix socket, as a state
/// machine with credit accounting (virtio 1.2, 5.10.6.3): it decides what each guest
/// packet means and what the device owes the guest; the queue handler does the I/O.
///
/// Memory is bounded: guest→host bytes the host socket did not take at once wait in
/// `pendingToHost`, never more than `bufAlloc` (the credit the guest was given; a guest
/// that sends more is reset). Host→guest bytes are read from the socket only into guest
/// buffers and only within the guest's credit, so nothing waits here; a host peer
/// writing faster fills its own socket buffer and blocks.
struct Connection {
    enum State: Equatable {
        /// Host-initiated: the guest was sent (or owes) a REQUEST and must answer.
        case connecting
        case established
    }

    /// Control packets the device owes the guest, sent before data when an RX buffer is free.
    struct Owed: OptionSet {
        let rawValue: UInt8
        static let request = Owed(rawValue: 1)
        static let response = Owed(rawValue: 2)
        static let creditUpdate = Owed(rawValue: 4)
        /// The host side reached end-of-file: SHUTDOWN(SEND) after the last data.
        static let shutdownSend = Owed(rawValue: 8)
    }

    /// What a guest packet asks of the device.
    enum Outcome: Equatable {
        case none
        /// OP_RW: forward the payload (`len` bytes) to the host socket.
        case forward(UInt32)
        /// OP_RESPONSE to our REQUEST: tell the host peer `OK <port>\n`.
        case accepted
        /// The guest will send nothing more: end the host socket's write side once
        /// `pendingToHost` is empty.
        case endHostWrites
        /// The guest sent RST: close the host socket, say nothing.
        case closed
        /// The packet breaks the protocol or the connection is fully shut down: RST to
        /// the guest, close the host socket.
        case reset(String)
    }

    let key: ConnectionKey
    let fd: CInt
    /// Credit the device gives the guest: the most guest bytes it holds for the host.
    let bufAlloc: UInt32
    private(set) var state: State

    // The guest's receive credit, from the last header it sent.
    private(set) var peerBufAlloc: UInt32 = 0
    private(set) var peerFwdCnt: UInt32 = 0
    /// Payload bytes sent to the guest (wrapping, as the spec's counters).
    private(set) var rxCnt: UInt32 = 0

    /// Payload bytes received from the guest, and those written to the host socket.
    private(set) var txCnt: UInt32 = 0
    private(set) var fwdCnt: UInt32 = 0
    /// fwd_cnt as the guest last saw it (in any header the device sent).
    private(set) var advertisedFwdCnt: UInt32 = 0

    var owed: Owed = []
    /// SHUTDOWN flags the guest has sent (cumulative).
    private(set) var guestShutdown: UInt32 = 0
    /// The host socket said end-of-file (or hung up).
    var hostEOF = false
    /// The host socket's write side was shut down (after the guest's SHUTDOWN(SEND)).
    var hostWritesEnded = false
    /// The host socket has data (poll said so): read it when the guest has credit and a buffer.
    var hostReadable = false
    /// Guest→host bytes the host socket has not taken yet (at most `bufAlloc`).
    var pendingToHost = ByteQueue()
    /// Monotonic ns by which the guest must answer our REQUEST (connecting only).
    var deadline: UInt64?
    /// In the handler's list of connections with something for the RX queue.
    var queued = false

    init(key: ConnectionKey, fd: CInt, bufAlloc: UInt32, hostInitiated: Bool, deadline: UInt64? = nil) {
        self.key = key
        self.fd = fd
        self.bufAlloc = bufAlloc
        state = hostInitiated ? .connecting : .established
        owed = hostInitiated ? .request : .response
        self.deadline = hostInitiated ? deadline : nil
    }

    /// Bytes the guest can still receive (0 when it took back credit it had given).
    var peerFree: UInt32 {
        let inFlight = rxCnt &- peerFwdCnt
        return inFlight >= peerBufAlloc ? 0 : peerBufAlloc - inFlight
    }

    /// The host socket is worth reading now (given an RX buffer).
    var wantsHostData: Bool {
        state == .established && !hostEOF && guestShutdown & ShutdownFlags.receive == 0 && peerFree > 0
    }

    var hasOwedPacket: Bool { !owed.isEmpty }

    /// Applies one validated guest packet (header checks done by `VsockHeader.validate`).
    mutating func receive(_ h: VsockHeader) -> Outcome {
        if h.op == VsockOp.rst { return .closed }
        guard receiveCredit(bufAlloc: h.bufAlloc, fwdCnt: h.fwdCnt) else {
            return .reset("credit lie: fwd_cnt \(h.fwdCnt), but only \(rxCnt) bytes were sent")
        }
        switch (state, h.op) {
        case (.connecting, VsockOp.response):
            state = .established
            deadline = nil
            return .accepted
        case (.connecting, _):
            return .reset("op \(h.op) before the guest answered the connection request")
        case (.established, VsockOp.rw):
            guard guestShutdown & ShutdownFlags.send == 0 else { return .reset("data after SHUTDOWN(SEND)") }
            let held = txCnt &- fwdCnt
            guard UInt64(held) + UInt64(h.len) <= UInt64(bufAlloc) else {
                return .reset("credit overrun: \(h.len) bytes sent with \(bufAlloc - min(held, bufAlloc)) of credit")
            }
            txCnt &+= h.len
            return h.len == 0 ? .none : .forward(h.len)
        case (.established, VsockOp.creditUpdate):
            return .none
        case (.established, VsockOp.creditRequest):
            owed.insert(.creditUpdate)
            return .none
        case (.established, VsockOp.shutdown):
            guestShutdown |= h.flags & ShutdownFlags.both
            // A clean close: both directions shut, the device answers with RST (5.10.6.6).
            if guestShutdown == ShutdownFlags.both { return .reset("shut down by the guest") }
            return guestShutdown & ShutdownFlags.send != 0 ? .endHostWrites : .none
        default:
            return .reset("op \(h.op) on an established connection")
        }
    }

    /// Every header carries the guest's credit; false (nothing changed) if its fwd_cnt
    /// claims more bytes consumed than were ever sent to it.
    mutating func receiveCredit(bufAlloc: UInt32, fwdCnt: UInt32) -> Bool {
        guard fwdCnt &- peerFwdCnt <= rxCnt &- peerFwdCnt else { return false }
        peerBufAlloc = bufAlloc
        peerFwdCnt = fwdCnt
        return true
    }

    /// `n` guest bytes reached the host socket (written, or taken from `pendingToHost`).
    mutating func forwarded(_ n: Int) {
        fwdCnt &+= UInt32(truncatingIfNeeded: n)
    }

    /// The guest should hear of freed credit: a quarter of the buffer moved since it last
    /// heard (and it may be waiting for it).
    var creditUpdateDue: Bool { fwdCnt &- advertisedFwdCnt >= bufAlloc / 4 }

    /// The header of a packet from the host side to the guest, carrying the current credit.
    mutating func header(op: UInt16, guestCID: UInt64, len: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        advertisedFwdCnt = fwdCnt
        if op == VsockOp.rw { rxCnt &+= len }
        return VsockHeader(srcCID: VsockHeader.hostCID, dstCID: guestCID, srcPort: key.local, dstPort: key.peer, op: op,
                           len: len, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    /// The next owed control packet's op and flags (and forgets it), or nil.
    mutating func takeOwed() -> (op: UInt16, flags: UInt32)? {
        if owed.contains(.request) { owed.remove(.request); return (VsockOp.request, 0) }
        if owed.contains(.response) { owed.remove(.response); return (VsockOp.response, 0) }
        if owed.contains(.creditUpdate) { owed.remove(.creditUpdate); return (VsockOp.creditUpdate, 0) }
        if owed.contains(.shutdownSend) { owed.remove(.shutdownSend); return (VsockOp.shutdown, ShutdownFlags.send) }
        return nil
    }
}

/// Bytes waiting for a socket, oldest first: an array and a read position, compacted
/// when half is consumed.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) { storage.append(contentsOf: bytes) }

    /// Runs `body` on the waiting bytes; it returns how many it consumed.
    mutating func drain(_ body: (UnsafeRawBufferPointer) -> Int) {
        let n = storage.withUnsafeBytes { all in body(UnsafeRawBufferPointer(rebasing: all[start...])) }
        start += max(0, min(n, count))
        if start == storage.count { storage.removeAll(keepingCapacity: false); start = 0 } else if start > storage.count / 2 {
            storage.removeFirst(start); start = 0
        }
    }
}
