import CShim
import Foundation
import Glibc
import IPC
import NetTestShim
import TestFrontend
import VirtioCore

/// A network namespace of this run (`volt-bench-<pid>`) holding two TAPs with vnet_hdr:
/// `vb0` for volt-net-worker, `vb1` for the bare loop. IPv6 is off so the kernel sends
/// nothing of its own on them. Registered with `Cleanup` as soon as it exists.
final class BenchNamespace {
    static let ip = "/usr/sbin/ip"
    let name = "volt-bench-\(getpid())"
    var path: String { "/run/netns/\(name)" }
    private var cleanupID: Int?

    init(taps: [String]) throws {
        Self.reapStale()
        try runCommand(Self.ip, ["netns", "add", name])
        cleanupID = Cleanup.shared.add { [name] in _ = try? runCommand(Self.ip, ["netns", "del", name]) }
        try exec(["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
        for tap in taps {
            try exec([Self.ip, "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"])
            try exec([Self.ip, "link", "set", tap, "up"])
        }
    }

    func delete() {
        if let id = cleanupID { Cleanup.shared.run(id); cleanupID = nil }
    }

    func exec(_ args: [String]) throws { try runCommand(Self.ip, ["netns", "exec", name] + args) }

    /// Runs `body` on a thread that entered the namespace (fds it opens belong there and
    /// stay usable from any thread).
    func inside<T>(_ body: @escaping () throws -> T) throws -> T {
        nonisolated(unsafe) var result: Result<T, Error>?
        let path = self.path
        runThreads(1, name: "netns") { _ in
            let r = nts_enter_netns(path)
            result = r < 0 ? .failure(BenchError("setns \(path): errno \(-r)")) : Result { try body() }
        }
        return try result!.get()
    }

    /// Deletes namespaces left by volt-bench runs that were SIGKILLed (their pid is gone).
    static func reapStale() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/run/netns") else { return }
        for n in names where n.hasPrefix("volt-bench-") {
            guard let pid = pid_t(n.dropFirst("volt-bench-".count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = try? runCommand(ip, ["netns", "del", n])
        }
    }
}

/// Ethernet broadcast, ethertype 0x88b5 (local experimental), padded to `length` bytes.
func benchFrame(_ length: Int) -> [UInt8] {
    var f: [UInt8] = Array(repeating: 0xff, count: 6) + [0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5]
    while f.count < length { f.append(UInt8(truncatingIfNeeded: f.count)) }
    return f
}

let benchEthertype: CInt = 0x88b5
let netHeaderSize = 12

/// Reads everything pending on a non-blocking fd and discards it.
func drainFD(_ fd: CInt) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
}

@inline(__always) func waitFD(_ fd: CInt, _ events: Int32, ms: Int32) {
    var p = pollfd(fd: fd, events: Int16(events), revents: 0)
    _ = poll(&p, 1, ms)
}

/// Counts frames arriving on a non-blocking fd until `deadline`: recv on an AF_PACKET
/// socket, or read on a TAP fd (then each frame carries a `skip`-byte vnet header).
func countFrames(_ fd: CInt, tap: Bool, deadline: UInt64) -> Measurement {
    var m = Measurement()
    var buffer = [UInt8](repeating: 0, count: 65536)
    let skip = tap ? netHeaderSize : 0
    let t0 = now()
    buffer.withUnsafeMutableBytes { b in
        while true {
            let n = tap ? read(fd, b.baseAddress, b.count) : recv(fd, b.baseAddress, b.count, 0)
            if n > 0 {
                m.operations += 1
                m.bytes += UInt64(n - skip)
                if m.operations & 63 != 0 { continue }
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                break
            }
            if now() >= deadline { break }
            if n <= 0 { waitFD(fd, POLLIN, ms: 5) }
        }
    }
    m.nanoseconds = max(1, min(now(), deadline) - t0)
    return m
}

/// Writes `bytes` as fast as the fd takes them until `deadline` (send on AF_PACKET,
/// write on a TAP fd). Returns frames written.
func blastFrames(_ fd: CInt, _ bytes: [UInt8], tap: Bool, deadline: UInt64) -> Int {
    var sent = 0
    bytes.withUnsafeBytes { b in
        while true {
            let n = tap ? write(fd, b.baseAddress, b.count) : send(fd, b.baseAddress, b.count, 0)
            if n > 0 {
                sent += 1
                if sent & 63 != 0 { continue }
            } else if errno == EAGAIN || errno == ENOBUFS {
                waitFD(fd, POLLOUT, ms: 1)
            } else if errno != EINTR {
                break
            }
            if now() >= deadline { break }
        }
    }
    return sent
}

/// Runs `body` on a new thread; call the result to join it.
func background(_ body: @escaping @Sendable () -> Void) -> () -> Void {
    let done = DispatchSemaphore(value: 0)
    let t = Thread { body(); done.signal() }
    t.stackSize = 1 << 20
    t.start()
    return { done.wait() }
}

/// volt-net-worker driven by the test frontend as a guest driver: 256 TX chains and 256
/// RX buffers, each one descriptor (header and frame together, 5.1.6.6), written once
/// into reserved slots and re-offered as they complete, as a Linux guest driver does:
/// per batch of completions one avail.idx publish and at most one kick (none while the
/// device says NO_NOTIFY, or with EVENT_IDX before avail_event).
final class VirtioNetDriver {
    let frontend: VhostUserTestFrontend
    static let slots = 256
    static let bufferSize = netHeaderSize + 1514
    private var tx: [(head: UInt16, buffer: GuestBuffer)] = []
    private var rx: [UInt16] = []
    /// Used elements of the current batch (kept: no allocation per batch).
    private var used: [UsedElement] = []
    private(set) var kicks = 0
    private(set) var batches = 0

    init(socketPath: String, mergeable: Bool, eventIdx: Bool) throws {
        var features = ~UInt64(0)
        if !mergeable { features &= ~NetFeature.mrgRxbuf }
        frontend = try VhostUserTestFrontend(socketPath: socketPath,
                                             options: TestFrontendOptions(memorySize: 64 << 20, queueCount: 2, queueSize: 256,
                                                                          features: features, eventIdx: eventIdx))
        try frontend.start()
        guard frontend.negotiatedFeatures & VirtioFeature.version1 != 0 else {
            throw BenchError("volt-net-worker did not offer VIRTIO_F_VERSION_1 (12-byte header assumed)")
        }
        for slot in try frontend.reserveDescriptors(queue: 1, count: Self.slots) {
            tx.append((slot, try frontend.allocate(UInt32(Self.bufferSize))))
        }
        rx = try frontend.reserveDescriptors(queue: 0, count: Self.slots)
        for slot in rx {
            let b = try frontend.allocate(UInt32(Self.bufferSize))
            try frontend.writeRawDescriptor(queue: 0, slot: slot, address: b.address, length: b.length, flags: .write)
        }
        try frontend.offerRaw(queue: 0, heads: rx)
        try frontend.kick(queue: 0)
        used.reserveCapacity(Self.slots)
    }

    /// Re-offers the heads in `used` (one publish) and kicks if the device wants it.
    private func reoffer(queue: Int) throws {
        try frontend.offerRaw(queue: queue, used: used)
        if try frontend.kickIfNeeded(queue: queue) { kicks += 1 }
        batches += 1
    }

    /// Guest → worker → TAP: keeps every TX slot offered until `deadline`; returns frames the
    /// worker completed (the rate itself is counted on the TAP side).
    func transmit(frame: [UInt8], deadline: UInt64) throws -> Int {
        let bytes = [UInt8](repeating: 0, count: netHeaderSize) + frame
        for (head, buffer) in tx {
            try frontend.write(bytes, to: buffer)
            try frontend.writeRawDescriptor(queue: 1, slot: head, address: buffer.address, length: UInt32(bytes.count), flags: [])
        }
        try frontend.offerRaw(queue: 1, heads: tx.map(\.head))
        try frontend.kick(queue: 1)
        var outstanding = tx.count
        var completed = 0
        while outstanding > 0 {
            used.removeAll(keepingCapacity: true)
            let n = try frontend.waitForUsedRaw(queue: 1, into: &used, timeout: 10)
            completed += n
            outstanding -= n
            if now() < deadline {
                try reoffer(queue: 1)
                outstanding += n
            }
        }
        return completed
    }

    /// TAP → worker → guest: counts frames landing in RX buffers until `deadline`,
    /// re-offering each batch of buffers at once.
    func receive(deadline: UInt64) throws -> Measurement {
        var m = Measurement()
        let t0 = now()
        while true {
            let t = now()
            if t >= deadline { break }
            used.removeAll(keepingCapacity: true)
            do {
                try frontend.waitForUsedRaw(queue: 0, into: &used, timeout: Double(deadline - t) / 1e9)
            } catch TestFrontendError.timedOut { break }
            for u in used {
                m.operations += 1
                m.bytes += UInt64(max(0, Int(u.length) - netHeaderSize))
            }
            try reoffer(queue: 0)
        }
        m.nanoseconds = max(1, min(now(), deadline) - t0)
        return m
    }

    /// Re-offers whatever RX buffers the worker filled since the last call (frames left
    /// over from the previous row).
    func drainReceive() throws {
        while true {
            used.removeAll(keepingCapacity: true)
            do { try frontend.waitForUsedRaw(queue: 0, into: &used, timeout: 0.05) } catch TestFrontendError.timedOut { return }
            try reoffer(queue: 0)
        }
    }
}

/// `volt-bench net`: TX and RX, 64- and 1500-byte frames, worker vs bare TAP (and a
/// second worker with `--vs-worker`), one table.
struct NetBench {
    var seconds: Double
    var frameSizes: [Int]
    var mergeable: Bool
    var eventIdx: Bool
    var rounds: Int
    /// CPU for the far-end peer; the device path (worker, frontend, bare loop) gets the
    /// other one. nil: the scheduler places every thread.
    var peerCPU: CInt?
    /// `--vs-worker`: a second volt-net-worker binary, run as the "base" backend on TAP vb2.
    var baseWorker: String?

    func run() throws {
        let workerPath = executableDirectory() + "/volt-net-worker"
        guard access(workerPath, X_OK) == 0 else {
            throw BenchError("\(workerPath) not found: build it first (swift build -c release)")
        }
        guard getuid() == 0, access("/dev/net/tun", R_OK | W_OK) == 0 else {
            throw BenchError("net needs root and /dev/net/tun (it creates a network namespace and TAPs)")
        }
        if let peerCPU {
            // The worker inherits this thread's CPU when spawned below.
            let r = nts_pin_thread(1 - peerCPU)
            guard r == 0 else { throw BenchError("pinning to CPU \(1 - peerCPU): errno \(-r)") }
        }
        let ns = try BenchNamespace(taps: ["vb0", "vb1"] + (baseWorker == nil ? [] : ["vb2"]))
        defer { ns.delete() }
        let work = try makeWorkDirectory()

        // Workers are stopped before the namespace is deleted.
        var workerCleanups: [Int] = []
        defer { for id in workerCleanups.reversed() { Cleanup.shared.run(id) } }
        func startWorker(_ path: String, name: String, tap: String) throws -> VirtioNetDriver {
            let socket = work + "/\(name).sock"
            let (exe, prefix) = workerCommand(path)
            let worker = try Child(BenchNamespace.ip, ["netns", "exec", ns.name, exe] + prefix + ["--socket-path", socket, "--tap", tap],
                                   log: work + "/\(name)-worker.log")
            workerCleanups.append(Cleanup.shared.add { worker.stop() })
            try waitForSocket(socket, child: worker)
            return try VirtioNetDriver(socketPath: socket, mergeable: mergeable, eventIdx: eventIdx)
        }
        let driver = try startWorker(workerPath, name: "volt-net", tap: "vb0")
        let baseDriver = try baseWorker.map { try startWorker($0, name: "base-net", tap: "vb2") }

        // The peers: an AF_PACKET socket per TAP, and our own fd on the bare TAP vb1.
        let (peers, bare) = try ns.inside { () throws -> ([CInt], CInt) in
            let peers = (["vb0", "vb1"] + (baseDriver == nil ? [] : ["vb2"])).map { (tap: String) in nts_packet_socket(tap, benchEthertype) }
            var name = [CChar](repeating: 0, count: Int(VOLT_IFNAMSIZ))
            let t = volt_tap_open("vb1", VOLT_IFF_TAP | VOLT_IFF_NO_PI | VOLT_IFF_VNET_HDR, &name)
            guard peers.allSatisfy({ $0 >= 0 }), t >= 0 else { throw BenchError("packet sockets / TAP open failed: \(peers) \(t)") }
            guard volt_tap_set_vnet_hdr_size(t, CInt(netHeaderSize)) >= 0 else { throw BenchError("TUNSETVNETHDRSZ failed") }
            return (peers, t)
        }
        defer { for fd in peers + [bare] { close(fd) } }
        let (peer0, peer1) = (peers[0], peers[1])
        for fd in peers {
            var size: CInt = 8 << 20
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
        }

        let peerCPU = self.peerCPU
        @Sendable func pinPeer() { if let peerCPU { _ = nts_pin_thread(peerCPU) } }

        /// One slice of one cell: frames counted at the far end, frames the source pushed.
        typealias Turn = (counted: Measurement, sent: Int)
        let slice = seconds / Double(rounds)

        // TX: volt = frontend → worker → vb0, counted by an AF_PACKET reader on vb0 (base:
        // the same on vb2); bare = write() into vb1's fd, counted the same way on vb1.
        func txWorker(_ driver: VirtioNetDriver, peer: CInt, _ frame: [UInt8]) throws -> Turn {
            drainFD(peer)
            let deadline = now() + UInt64(slice * 1e9)
            nonisolated(unsafe) var counted = Measurement()
            let join = background { pinPeer(); counted = countFrames(peer, tap: false, deadline: deadline) }
            let sent = try driver.transmit(frame: frame, deadline: deadline)
            join()
            return (counted, sent)
        }
        func txBare(_ frame: [UInt8]) -> Turn {
            let tapFrame = [UInt8](repeating: 0, count: netHeaderSize) + frame
            drainFD(peer1)
            let deadline = now() + UInt64(slice * 1e9)
            nonisolated(unsafe) var counted = Measurement()
            let join = background { pinPeer(); counted = countFrames(peer1, tap: false, deadline: deadline) }
            let sent = blastFrames(bare, tapFrame, tap: true, deadline: deadline)
            join()
            return (counted, sent)
        }
        // RX: volt = AF_PACKET writer on vb0 → TAP → worker → RX buffers, counted by
        // the frontend (base: the same on vb2); bare = the same writer on vb1, read() from vb1's fd.
        func rxWorker(_ driver: VirtioNetDriver, peer: CInt, _ frame: [UInt8]) throws -> Turn {
            try driver.drainReceive()
            let deadline = now() + UInt64(slice * 1e9)
            nonisolated(unsafe) var sent = 0
            let join = background { pinPeer(); sent = blastFrames(peer, frame, tap: false, deadline: deadline) }
            let counted = try driver.receive(deadline: deadline)
            join()
            return (counted, sent)
        }
        func rxBare(_ frame: [UInt8]) -> Turn {
            drainFD(bare)
            let deadline = now() + UInt64(slice * 1e9)
            nonisolated(unsafe) var sent = 0
            let join = background { pinPeer(); sent = blastFrames(peer1, frame, tap: false, deadline: deadline) }
            let counted = countFrames(bare, tap: true, deadline: deadline)
            join()
            return (counted, sent)
        }

        // The backends in table order: volt, bare, then base with --vs-worker (a worker
        // backend has a driver and the peer socket on its TAP; bare has no driver).
        let backends: [(label: String, driver: VirtioNetDriver?, peer: CInt)] =
            [("volt", driver, peer0), ("bare", nil, peer1)] + (baseDriver.map { [("base", $0, peers[2])] } ?? [])
        struct Row { let name: String; var counted: [Measurement]; var sent: [Int] }
        var rows: [Row] = []
        for length in frameSizes {
            let frame = benchFrame(length)
            for direction in ["TX", "RX"] {
                var row = Row(name: "\(direction) \(length) B", counted: backends.map { _ in Measurement() }, sent: backends.map { _ in 0 })
                fputs("  \(row.name):", stderr)
                let counts0 = backends.map { ($0.driver?.kicks ?? 0, $0.driver?.batches ?? 0) }
                // The cell runs in `rounds` slices, the backends taking turns (rotating who
                // goes first), so a slow spell of the host hits all of them alike.
                for round in 0..<rounds {
                    for k in 0..<backends.count {
                        let i = (k + round) % backends.count
                        let b = backends[i]
                        let s: Turn = try b.driver.map { d in
                            try direction == "TX" ? txWorker(d, peer: b.peer, frame) : rxWorker(d, peer: b.peer, frame)
                        } ?? (direction == "TX" ? txBare(frame) : rxBare(frame))
                        row.counted[i].append(s.counted)
                        row.sent[i] += s.sent
                    }
                }
                fputs(backends.indices.map { i in
                    let d = backends[i].driver.map { " (\($0.batches - counts0[i].1) batches, \($0.kicks - counts0[i].0) kicks)" } ?? ""
                    return " \(backends[i].label) \(formatCount(row.counted[i].opsPerSecond)) pps" + d
                }.joined(separator: ",") + "\n", stderr)
                rows.append(row)
            }
        }

        print("volt-bench net — \(machineSummary())")
        print("namespace \(ns.name), TAPs with vnet_hdr (12-byte header), frame = Ethernet header + payload, no FCS; "
              + "\(format(seconds, 1)) s per cell in \(rounds) rounds, \(baseDriver == nil ? "volt and bare" : "volt, bare and base") taking turns; "
              + "Gbit/s counts frame bytes only; "
              + "VIRTIO_NET_F_MRG_RXBUF \(driver.frontend.mergeableRxBuffers ? "negotiated (as Linux guests do)" : "not negotiated"); "
              + "VIRTIO_RING_F_EVENT_IDX \(driver.frontend.eventIdx ? "negotiated (as Linux guests do)" : "not negotiated")")
        print("TX counted by an AF_PACKET reader on the TAP; RX counted in the frontend's RX buffers; "
              + "bare = one thread write()/read() on the TAP fd, the other end an AF_PACKET socket")
        print("sent = frames the source pushed (the rest were dropped by the kernel or not yet consumed)")
        if let baseWorker { print("base = \(baseWorker) on vb2, driven like volt (A/B); volt/base = packets/s ratio, no target") }
        print("target: volt/bare ≥ 0.80 (packets/s); ✗ marks a miss\n")
        var table = Table(header: ["row"] + backends.flatMap { ["\($0.label) pps", "\($0.label) Gbit/s", "\($0.label) sent pps"] }
                          + ["volt/bare"] + (baseDriver == nil ? [] : ["volt/base"]))
        for r in rows {
            var cells = [r.name]
            for (m, sent) in zip(r.counted, r.sent) {
                cells += [formatCount(m.opsPerSecond), format(m.gbitPerSecond, 3), formatCount(Double(sent) / seconds)]
            }
            let ratio = r.counted[0].opsPerSecond / r.counted[1].opsPerSecond
            cells.append(format(ratio, 2) + (ratio >= 0.8 ? " ✓" : " ✗"))
            if baseDriver != nil { cells.append(format(r.counted[0].opsPerSecond / r.counted[2].opsPerSecond, 2)) }
            table.rows.append(cells)
        }
        print(table.render())
        fflush(stdout)
    }
}
