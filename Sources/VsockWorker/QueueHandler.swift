import CShim
import Glibc
import IPC
import VirtioCore
import WorkerCore

/// The whole device on one queue thread: RX (slot 0), TX (slot 1) and event (slot 2)
/// rings, the listening socket, host peers still sending their CONNECT line, and every
/// connection's host socket. Single-threaded by construction (the framework calls it
/// with the thread's lock held), so the connection table needs no lock.
///
/// Hostile guest packets reset the connection they name (or, naming none, get an RST
/// of their own); a hostile host peer is closed. Nothing here traps on outside input.
final class VsockQueueHandler: QueueThreadHandler {
    static let rxSlot = 0, txSlot = 1, eventSlot = 2
    /// Packets per queue per turn, so one flood cannot starve the rest.
    static let budget = 256
    static let maxConnections = 1024
    static let maxPendingHostConnections = 64
    /// RSTs waiting for RX buffers; more are dropped (the guest times out instead).
    static let maxQueuedResets = 4096
    /// Credit given to the guest per connection: the most guest bytes held for a slow
    /// host peer (Firecracker's per-connection buffer is the same size).
    static let bufAlloc: UInt32 = 256 * 1024
    static let listenerTag = UInt32.max

    let config: VsockConfig
    let faults: FaultInjector
    private var connections: [ConnectionKey: Connection] = [:]
    /// Host socket fd -> its connection.
    private var byFD: [CInt: ConnectionKey] = [:]
    private var pendingHost: [CInt: PendingHostConnection] = [:]
    /// Connections with something for the RX queue, in order (round robin).
    private var ready: [ConnectionKey] = []
    private var readyHead = 0
    private var resets: [VsockHeader] = []
    private var ports = HostPortAllocator()
    /// poll events each watched fd is registered for.
    private var interest: [CInt: UInt32] = [:]
    private(set) var transportResetPending: Bool
    private var chain = DescriptorChain()
    private let iovecs: UnsafeMutableBufferPointer<iovec>
    /// This turn's counts.
    private var stats = VsockStats()

    init(config: VsockConfig, faults: FaultInjector) {
        self.config = config
        self.faults = faults
        transportResetPending = config.transportReset
        iovecs = .allocate(capacity: max(config.queueSize, 1))
    }

    deinit {
        iovecs.deallocate()
        for fd in byFD.keys { close(fd) }
        for fd in pendingHost.keys { close(fd) }
    }

    /// Test view.
    var connectionCount: Int { connections.count }

    func prepare(_ context: inout QueueThreadContext) throws {
        context.watch(config.listenFD, tag: Self.listenerTag, events: UInt32(POLLIN))
    }

    func handle(_ context: inout QueueThreadContext) -> Bool {
        let now = TokenBucket.now()
        for event in context.deviceEvents { deviceEvent(event.tag, event.events, now: now, &context) }
        let rxActive = context.rings[Self.rxSlot].isActive, txActive = context.rings[Self.txSlot].isActive
        if !rxActive && !txActive && !connections.isEmpty {
            // The driver stopped or reset the device: its connections are gone.
            for key in Array(connections.keys) { drop(key, reset: false, &context) }
            resets.removeAll()
        }
        var more = false
        if txActive { more = processTX(&context) || more }
        expire(now: now, &context)
        if rxActive { more = processRX(&context) || more }
        if context.rings.count > Self.eventSlot { processEvent(&context) }
        updateInterest(&context)
        context.wakeAfterMilliseconds = nextDeadline(now: now)
        stats.move(into: &context.counters)
        return more
    }

    // MARK: - Host side events

    private func deviceEvent(_ tag: UInt32, _ events: UInt32, now: UInt64, _ c: inout QueueThreadContext) {
        if tag == Self.listenerTag { acceptHostPeers(now: now, &c); return }
        let fd = CInt(bitPattern: tag)
        if pendingHost[fd] != nil { readConnectLine(fd, now: now, &c); return }
        guard let key = byFD[fd], var conn = connections[key] else { return }
        if events & UInt32(POLLERR | POLLNVAL) != 0 {
            drop(key, reset: true, &c, why: "host socket error")
            return
        }
        if events & UInt32(POLLHUP) != 0 {
            // Hung up: reads return what is left, then EOF; poll would report it forever.
            conn.hostReadable = true
            c.unwatch(fd)
            interest[fd] = UInt32.max
        }
        if events & UInt32(POLLIN) != 0 { conn.hostReadable = true }
        connections[key] = conn
        if events & UInt32(POLLOUT) != 0 { flushToHost(key, &c) }
        enqueueIfReady(key)
    }

    private func acceptHostPeers(now: UInt64, _ c: inout QueueThreadContext) {
        for _ in 0..<16 {
            let fd = volt_accept_nonblocking(config.listenFD)
            if fd < 0 {
                if fd != -EAGAIN && fd != -EWOULDBLOCK && fd != -EINTR {
                    // EMFILE and the like: the peer waits in the backlog; try next turn.
                    stats.hostAcceptErrors += 1
                }
                return
            }
            guard pendingHost.count < Self.maxPendingHostConnections, connections.count < Self.maxConnections else {
                close(fd)
                stats.hostRejected += 1
                continue
            }
            pendingHost[fd] = PendingHostConnection(fd: fd, deadline: now &+ config.connectTimeoutNs)
            c.watch(fd, tag: UInt32(bitPattern: fd), events: UInt32(POLLIN))
            interest[fd] = UInt32(POLLIN)
            readConnectLine(fd, now: now, &c)
        }
    }

    private func readConnectLine(_ fd: CInt, now: UInt64, _ c: inout QueueThreadContext) {
        guard var peer = pendingHost[fd] else { return }
        switch peer.readLine() {
        case .needMore:
            pendingHost[fd] = peer
        case let .invalid(why):
            WorkerLog.line("host peer refused: \(why)")
            closePending(fd, &c)
            stats.hostRejected += 1
        case let .port(guestPort):
            pendingHost[fd] = nil
            guard let local = ports.allocate(inUse: { p in connections[ConnectionKey(local: p, peer: guestPort)] != nil }) else {
                closeWatched(fd, &c)
                stats.hostRejected += 1
                return
            }
            let key = ConnectionKey(local: local, peer: guestPort)
            connections[key] = Connection(key: key, fd: fd, bufAlloc: Self.bufAlloc, hostInitiated: true,
                                          deadline: now &+ config.connectTimeoutNs)
            byFD[fd] = key
            stats.connectionsOpened += 1
            enqueueIfReady(key)
        }
    }

    private func closePending(_ fd: CInt, _ c: inout QueueThreadContext) {
        pendingHost[fd] = nil
        closeWatched(fd, &c)
    }

    private func closeWatched(_ fd: CInt, _ c: inout QueueThreadContext) {
        if interest[fd] != UInt32.max { c.unwatch(fd) }
        interest[fd] = nil
        close(fd)
    }

    /// Host peers whose line, and connections whose guest answer, are overdue.
    private func expire(now: UInt64, _ c: inout QueueThreadContext) {
        for (fd, peer) in pendingHost where peer.deadline <= now {
            WorkerLog.line("host peer refused: no CONNECT line within \(config.connectTimeoutMs) ms")
            closePending(fd, &c)
            stats.hostRejected += 1
        }
        for (key, conn) in connections where (conn.deadline ?? .max) <= now {
            drop(key, reset: true, &c, why: "the guest did not answer the connection request")
        }
    }

    private func nextDeadline(now: UInt64) -> Int32? {
        var next = UInt64.max
        for peer in pendingHost.values { next = min(next, peer.deadline) }
        for conn in connections.values { if let d = conn.deadline { next = min(next, d) } }
        guard next != .max else { return nil }
        return next <= now ? 0 : Int32(clamping: (next - now + 999_999) / 1_000_000)
    }

    // MARK: - TX: packets from the guest

    private func processTX(_ c: inout QueueThreadContext) -> Bool {
        guard var queue = c.rings[Self.txSlot].queue else { return false }
        var served = 0
        var broken: VirtqueueError?
        queue.disableNotifications()
        while served < Self.budget {
            do {
                guard try queue.popAvailable(into: &chain) else {
                    if try queue.enableNotifications() { queue.disableNotifications(); continue }
                    break
                }
            } catch let VirtqueueError.malformedChain(head, _) where head < queue.size {
                stats.malformedPackets += 1
                try? queue.stageUsed(head: head, length: 0)
                served += 1
                continue
            } catch {
                broken = error
                break
            }
            served += 1
            guestPacket(&c)
            do { try queue.stageUsed(head: chain.head, length: 0) } catch { broken = error; break }
        }
        queue.publish(notifying: c.rings[Self.txSlot].callFD, counters: &c.counters)
        c.rings[Self.txSlot].queue = queue
        faults.completed(served) { c.counters.faultsInjected &+= 1 }
        if let broken { c.rings[Self.txSlot].fail(broken, counters: &c.counters) }
        return served >= Self.budget
    }

    /// One packet of the popped TX chain.
    private func guestPacket(_ c: inout QueueThreadContext) {
        stats.packetsFromGuest += 1
        var raw = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // 48 bytes
        let got = withUnsafeMutableBytes(of: &raw) { chain.copyFromReadable(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<VsockHeader.size])) }
        guard got == VsockHeader.size, let h = withUnsafeBytes(of: &raw, { VsockHeader($0) }) else {
            // No header: no connection can be named.
            stats.malformedPackets += 1
            return
        }
        do {
            try h.validate(readable: chain.readableLength, guestCID: config.guestCID)
        } catch {
            stats.malformedPackets += 1
            refuse(h, why: error.description, &c)
            return
        }
        guard var conn = connections[h.key] else {
            if h.op == VsockOp.request { guestConnect(h, &c) } else if h.op != VsockOp.rst {
                stats.unknownConnection += 1
                queueReset(for: h)
            }
            return
        }
        let outcome = conn.receive(h)
        connections[h.key] = conn
        switch outcome {
        case .none: break
        case let .forward(len): forwardToHost(h.key, len: len, &c)
        case .accepted: accepted(h.key, &c)
        case .endHostWrites: flushToHost(h.key, &c)
        case .closed: drop(h.key, reset: false, &c)
        case let .reset(why):
            if why.hasPrefix("credit") { stats.creditViolations += 1 }
            drop(h.key, reset: true, &c, why: why)
        }
        if var conn = connections[h.key], conn.creditUpdateDue {
            conn.owed.insert(.creditUpdate)
            connections[h.key] = conn
        }
        enqueueIfReady(h.key)
    }

    /// A packet that failed validation: the connection it names (if any) is reset.
    private func refuse(_ h: VsockHeader, why: String, _ c: inout QueueThreadContext) {
        if connections[h.key] != nil {
            drop(h.key, reset: true, &c, why: why)
        } else if h.op != VsockOp.rst {
            queueReset(for: h)
        }
    }

    /// OP_REQUEST to host port P: connect to `<uds_path>_P`; RST if nothing listens.
    private func guestConnect(_ h: VsockHeader, _ c: inout QueueThreadContext) {
        guard connections.count < Self.maxConnections else {
            stats.hostConnectFailures += 1
            queueReset(for: h)
            return
        }
        let fd = volt_unix_connect_nonblocking(config.connectPath(port: h.dstPort))
        guard fd >= 0 else {
            stats.hostConnectFailures += 1
            queueReset(for: h)
            return
        }
        var conn = Connection(key: h.key, fd: fd, bufAlloc: Self.bufAlloc, hostInitiated: false)
        conn.setInitialPeerCredit(bufAlloc: h.bufAlloc, fwdCnt: h.fwdCnt)
        connections[h.key] = conn
        byFD[fd] = h.key
        c.watch(fd, tag: UInt32(bitPattern: fd), events: 0)
        interest[fd] = 0
        stats.connectionsOpened += 1
        enqueueIfReady(h.key)
    }

    /// The guest accepted a host-initiated connection: the host peer hears `OK <port>\n`.
    private func accepted(_ key: ConnectionKey, _ c: inout QueueThreadContext) {
        guard let conn = connections[key] else { return }
        let line = Array("OK \(key.local)\n".utf8)
        // The socket's send buffer is empty (nothing was written to it before): a short
        // write means it is broken.
        let n = line.withUnsafeBytes { write(conn.fd, $0.baseAddress, $0.count) }
        if n != line.count { drop(key, reset: true, &c, why: "cannot tell the host peer OK") }
    }

    /// OP_RW's payload (after the header in the popped chain) to the host socket.
    private func forwardToHost(_ key: ConnectionKey, len: UInt32, _ c: inout QueueThreadContext) {
        guard var conn = connections[key] else { return }
        var written = 0
        if conn.pendingToHost.isEmpty {
            let count = chain.fillIovecs(writable: false, into: iovecs, skip: UInt64(VsockHeader.size), length: UInt64(len))
            let n = writev(conn.fd, iovecs.baseAddress, CInt(count))
            if n < 0 {
                let e = errno
                if e != EAGAIN && e != EWOULDBLOCK && e != EINTR {
                    drop(key, reset: true, &c, why: "host socket write failed (errno \(e))")
                    return
                }
            } else {
                written = n
            }
        }
        conn.forwarded(written)
        stats.bytesToHost += UInt64(written)
        if written < Int(len) {
            // The rest waits (bounded: the guest's credit is at most bufAlloc).
            var rest = [UInt8](repeating: 0, count: Int(len) - written)
            _ = rest.withUnsafeMutableBytes { chain.copyFromReadable(offset: VsockHeader.size + written, into: $0) }
            rest.withUnsafeBytes { conn.pendingToHost.append($0) }
        }
        connections[key] = conn
    }

    /// Writes what waits for the host socket; ends its write side once the guest shut
    /// its sending and nothing waits.
    private func flushToHost(_ key: ConnectionKey, _ c: inout QueueThreadContext) {
        guard var conn = connections[key] else { return }
        var failed: Int32?
        while !conn.pendingToHost.isEmpty && failed == nil {
            var moved = 0
            conn.pendingToHost.drain { bytes in
                let n = write(conn.fd, bytes.baseAddress, bytes.count)
                if n < 0 { let e = errno; if e != EAGAIN && e != EWOULDBLOCK && e != EINTR { failed = e }; return 0 }
                moved = n
                return n
            }
            if moved == 0 { break }
            conn.forwarded(moved)
            stats.bytesToHost += UInt64(moved)
        }
        if let failed {
            connections[key] = conn
            drop(key, reset: true, &c, why: "host socket write failed (errno \(failed))")
            return
        }
        if conn.pendingToHost.isEmpty, conn.guestShutdown & ShutdownFlags.send != 0, !conn.hostWritesEnded {
            _ = volt_shutdown_write(conn.fd)
            conn.hostWritesEnded = true
        }
        if conn.creditUpdateDue { conn.owed.insert(.creditUpdate) }
        connections[key] = conn
        enqueueIfReady(key)
    }

    /// Closes a connection's host socket and forgets it; with `reset`, the guest is sent RST.
    private func drop(_ key: ConnectionKey, reset: Bool, _ c: inout QueueThreadContext, why: String? = nil) {
        guard let conn = connections.removeValue(forKey: key) else { return }
        byFD[conn.fd] = nil
        closeWatched(conn.fd, &c)
        if reset {
            stats.connectionsReset += 1
            var header = conn
            queueReset(header.header(op: VsockOp.rst, guestCID: config.guestCID))
            if let why { WorkerLog.line("connection \(key.local)<->guest:\(key.peer) reset: \(why)") }
        } else {
            stats.connectionsClosed += 1
        }
    }

    /// An RST answering guest packet `h` (addressed back to its source port).
    private func queueReset(for h: VsockHeader) {
        queueReset(VsockHeader(srcCID: VsockHeader.hostCID, dstCID: config.guestCID, srcPort: h.dstPort, dstPort: h.srcPort,
                               op: VsockOp.rst))
    }

    private func queueReset(_ h: VsockHeader) {
        guard resets.count < Self.maxQueuedResets else { stats.resetsDropped += 1; return }
        resets.append(h)
    }

    // MARK: - RX: packets to the guest

    private func enqueueIfReady(_ key: ConnectionKey) {
        guard var conn = connections[key], !conn.queued else { return }
        guard conn.hasOwedPacket || (conn.hostReadable && conn.wantsHostData) else { return }
        conn.queued = true
        connections[key] = conn
        ready.append(key)
    }

    private var hasRXWork: Bool { !resets.isEmpty || readyHead < ready.count }

    private func processRX(_ c: inout QueueThreadContext) -> Bool {
        guard hasRXWork, var queue = c.rings[Self.rxSlot].queue else { return false }
        var served = 0
        var broken: VirtqueueError?
        while served < Self.budget && hasRXWork {
            do {
                guard try queue.popAvailable(into: &chain) else {
                    // Out of buffers: ask for a kick when the guest adds some.
                    if try queue.enableNotifications() { continue }
                    break
                }
            } catch let VirtqueueError.malformedChain(head, _) where head < queue.size {
                stats.malformedPackets += 1
                try? queue.stageUsed(head: head, length: 0)
                continue
            } catch {
                broken = error
                break
            }
            guard chain.writableLength >= UInt32(VsockHeader.size), chain.writableCount <= iovecs.count else {
                stats.malformedPackets += 1
                do { try queue.stageUsed(head: chain.head, length: 0) } catch { broken = error; break }
                continue
            }
            guard let length = fillRXChain(&c) else {
                queue.nextAvail &-= 1   // nothing was written: the chain goes back
                continue
            }
            served += 1
            stats.packetsToGuest += 1
            do { try queue.stageUsed(head: chain.head, length: length) } catch { broken = error; break }
        }
        if readyHead >= ready.count { ready.removeAll(keepingCapacity: true); readyHead = 0 }
        queue.publish(notifying: c.rings[Self.rxSlot].callFD, counters: &c.counters)
        c.rings[Self.rxSlot].queue = queue
        if let broken { c.rings[Self.rxSlot].fail(broken, counters: &c.counters) }
        return served >= Self.budget
    }

    /// Writes one packet into the popped RX chain; its used length, or nil if the
    /// chosen connection had nothing after all.
    private func fillRXChain(_ c: inout QueueThreadContext) -> UInt32? {
        if !resets.isEmpty {
            let h = resets.removeFirst()
            return put(h)
        }
        let key = ready[readyHead]
        readyHead += 1
        guard var conn = connections[key] else { return nil }
        conn.queued = false
        defer { requeue(key) }
        if let (op, flags) = conn.takeOwed() {
            let h = conn.header(op: op, guestCID: config.guestCID, flags: flags)
            connections[key] = conn
            return put(h)
        }
        guard conn.hostReadable, conn.wantsHostData else { connections[key] = conn; return nil }
        let room = min(conn.peerFree, chain.writableLength - UInt32(VsockHeader.size), VsockHeader.maxPayload)
        let count = chain.fillIovecs(writable: true, into: iovecs, skip: UInt64(VsockHeader.size), length: UInt64(room))
        let n = readv(conn.fd, iovecs.baseAddress, CInt(count))
        if n > 0 {
            let h = conn.header(op: VsockOp.rw, guestCID: config.guestCID, len: UInt32(n))
            connections[key] = conn
            stats.bytesToGuest += UInt64(n)
            return put(h, payload: UInt32(n))
        }
        let e = errno
        if n < 0, e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
            conn.hostReadable = false
            connections[key] = conn
            return nil
        }
        if n < 0 {
            connections[key] = conn
            drop(key, reset: true, &c, why: "host socket read failed (errno \(e))")
            return put(resets.removeLast())
        }
        // End of file: the host peer sends nothing more.
        conn.hostEOF = true
        conn.hostReadable = false
        let h = conn.header(op: VsockOp.shutdown, guestCID: config.guestCID, flags: ShutdownFlags.send)
        connections[key] = conn
        return put(h)
    }

    private func requeue(_ key: ConnectionKey) { enqueueIfReady(key) }

    private func put(_ h: VsockHeader, payload: UInt32 = 0) -> UInt32 {
        var bytes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &bytes) { h.encode(into: $0) }
        _ = withUnsafeBytes(of: &bytes) { chain.copyToWritable(from: UnsafeRawBufferPointer(rebasing: $0[..<VsockHeader.size])) }
        return UInt32(VsockHeader.size) + payload
    }

    // MARK: - Event queue and poll interest

    /// TRANSPORT_RESET (5.10.6.7) once, for a restarted worker or a restored VM.
    private func processEvent(_ c: inout QueueThreadContext) {
        guard transportResetPending, c.rings[Self.eventSlot].isActive, var queue = c.rings[Self.eventSlot].queue else { return }
        do {
            guard try queue.popAvailable(into: &chain) else { return }
            var id = UInt32(0).littleEndian   // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
            let n = withUnsafeBytes(of: &id) { chain.copyToWritable(from: $0) }
            try queue.stageUsed(head: chain.head, length: UInt32(n))
            if n == 4 { transportResetPending = false; stats.transportResets += 1 }
        } catch {
            c.rings[Self.eventSlot].fail(error, counters: &c.counters)
        }
        queue.publish(notifying: c.rings[Self.eventSlot].callFD, counters: &c.counters)
        c.rings[Self.eventSlot].queue = queue
    }

    private func updateInterest(_ c: inout QueueThreadContext) {
        for conn in connections.values {
            guard let current = interest[conn.fd], current != UInt32.max else { continue }
            var want: UInt32 = 0
            if !conn.hostReadable && conn.wantsHostData { want |= UInt32(POLLIN) }
            if !conn.pendingToHost.isEmpty { want |= UInt32(POLLOUT) }
            if want != current, c.setInterest(conn.fd, events: want) { interest[conn.fd] = want }
        }
    }
}

extension Connection {
    /// The credit in the guest's OP_REQUEST.
    mutating func setInitialPeerCredit(bufAlloc: UInt32, fwdCnt: UInt32) {
        _ = receiveCredit(bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }
}
