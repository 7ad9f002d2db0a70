import Foundation
import CShim
import Glibc
import IPC
import Testing
import TestFrontend
import VirtioCore
@testable import VsockWorker
@testable import WorkerCore

typealias Op = VsockPacket.Op

/// The vsock device in-process through vhost-user, the test frontend as its guest
/// driver and plain Unix sockets as host peers: Firecracker's handshake both ways, data,
/// credit, shutdown, and hostile packets and peers.
final class VsockSession {
    static let cid: UInt64 = 3
    let dir: String
    let uds: String
    let server: InProcessBackend
    let backend: DeviceBackend
    let driver: VsockDriver
    var fe: VhostUserTestFrontend { server.frontend }

    init(transportReset: Bool = false, timeoutMs: Int = 2000, rxBuffers: Int = 32) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-vsock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        uds = dir + "/v.sock"
        let side = try HostSide.open(VsockArguments(guestCID: Self.cid, udsPath: uds), jailed: false)
        let config = VsockConfig(guestCID: Self.cid, listenFD: side.listenFD, connectPrefix: side.connectPrefix,
                                 connectTimeoutMs: timeoutMs, transportReset: transportReset)
        backend = try DeviceBackend(device: VsockDevice(config: config, faults: []))
        server = try InProcessBackend(device: backend, options: TestFrontendOptions(memorySize: 32 << 20, queueCount: 3, queueSize: 256))
        try server.frontend.start()
        driver = try VsockDriver(server.frontend, guestCID: Self.cid, rxBuffers: rxBuffers)
    }

    deinit {
        server.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A host peer that connected with `CONNECT port` and the guest accepted: (peer,
    /// host port the worker gave it).
    func hostConnect(guestPort: UInt32, bufAlloc: UInt32 = 256 * 1024) throws -> (HostPeer, UInt32) {
        let peer = try HostPeer.connect(uds)
        peer.send("CONNECT \(guestPort)\n")
        let (req, _) = try driver.receive(op: Op.request, port: guestPort)
        #expect(req.srcCID == 2 && req.dstCID == Self.cid && req.type == 1)
        #expect((UInt32(1) << 30..<UInt32(1) << 31).contains(req.srcPort), "host port \(req.srcPort)")
        try driver.send(VsockPacket(srcCID: Self.cid, srcPort: guestPort, dstPort: req.srcPort, op: Op.response, bufAlloc: bufAlloc))
        let ok = peer.readLine()
        #expect(ok == "OK \(req.srcPort)\n")
        return (peer, req.srcPort)
    }

    func packet(_ op: UInt16, from guestPort: UInt32, to hostPort: UInt32, payload: [UInt8] = [], flags: UInt32 = 0,
                fwdCnt: UInt32 = 0, bufAlloc: UInt32 = 256 * 1024) -> VsockPacket {
        VsockPacket(srcCID: Self.cid, srcPort: guestPort, dstPort: hostPort, op: op, flags: flags, bufAlloc: bufAlloc,
                    fwdCnt: fwdCnt, payload: payload)
    }

    /// RW payload delivered to the guest for `guestPort` until `count` bytes arrived.
    func guestReceives(_ count: Int, port: UInt32) throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let (p, _) = try driver.receive(op: Op.rw, port: port)
            out += p.payload
        }
        return out
    }
}

@Suite(.serialized) struct DeviceTests {
    @Test func configSpaceIsTheGuestCIDAndThreeQueues() throws {
        let s = try VsockSession()
        #expect(try s.fe.config(offset: 0, size: 8) == [3, 0, 0, 0, 0, 0, 0, 0])
        #expect(s.fe.backendQueueCount == 3)
        #expect(s.fe.negotiatedFeatures & VirtioFeature.version1 != 0)
    }

    @Test func hostConnectsTheGuestAcceptsAndDataFlowsBothWays() throws {
        let s = try VsockSession()
        let (peer, hostPort) = try s.hostConnect(guestPort: 52)
        peer.send("hello guest")
        #expect(try s.guestReceives(11, port: 52) == Array("hello guest".utf8))
        try s.driver.send(s.packet(Op.rw, from: 52, to: hostPort, payload: Array("hello host".utf8)), split: true)
        #expect(peer.read(10) == Array("hello host".utf8))
        // The guest closes: SHUTDOWN both ways, the device answers RST, the host reads EOF.
        try s.driver.send(s.packet(Op.shutdown, from: 52, to: hostPort, flags: 3))
        let (rst, _) = try s.driver.receive(op: Op.rst, port: 52)
        #expect(rst.srcPort == hostPort)
        #expect(peer.closedByPeer())
        let counts = s.backend.countersNow()
        #expect(counts["bytes_to_host"] == 10 && counts["bytes_to_guest"] == 11 && counts["connections_opened"] == 1)
    }

    @Test func bytesSentRightAfterTheConnectLineReachTheGuest() throws {
        let s = try VsockSession()
        let peer = try HostPeer.connect(s.uds)
        peer.send("CONNECT 7\nearly bytes")
        let (req, _) = try s.driver.receive(op: Op.request, port: 7)
        try s.driver.send(s.packet(Op.response, from: 7, to: req.srcPort))
        #expect(peer.readLine() == "OK \(req.srcPort)\n")
        #expect(try s.guestReceives(11, port: 7) == Array("early bytes".utf8))
    }

    @Test func aGuestRSTClosesTheHostPeerWithoutOK() throws {
        let s = try VsockSession()
        let peer = try HostPeer.connect(s.uds)
        peer.send("CONNECT 99\n")
        let (req, _) = try s.driver.receive(op: Op.request, port: 99)
        try s.driver.send(s.packet(Op.rst, from: 99, to: req.srcPort))
        #expect(peer.readLine() == "", "no OK line")
        #expect(peer.closedByPeer())
    }

    @Test func aGuestThatNeverAnswersTimesOut() throws {
        let s = try VsockSession(timeoutMs: 100)
        let peer = try HostPeer.connect(s.uds)
        peer.send("CONNECT 5\n")
        let (req, _) = try s.driver.receive(op: Op.request, port: 5)
        #expect(peer.closedByPeer(), "closed once the guest's answer is overdue")
        let (rst, _) = try s.driver.receive(op: Op.rst, port: 5)
        #expect(rst.srcPort == req.srcPort)
    }

    @Test(arguments: ["HELLO\n", "GET / HTTP/1.1\r\n\r\n", "CONNECT 123456789012345678901234567890\n", "CONNECT x\n", "CONNECT \n"])
    func garbageInsteadOfConnectIsClosed(_ line: String) throws {
        let s = try VsockSession()
        let peer = try HostPeer.connect(s.uds)
        peer.send(line)
        #expect(peer.closedByPeer())
        // The device still serves others.
        let (ok, _) = try s.hostConnect(guestPort: 1)
        ok.send("x")
        #expect(try s.guestReceives(1, port: 1) == [UInt8(ascii: "x")])
        #expect(s.backend.countersNow()["host_rejected"] == 1)
    }

    @Test func aSilentHostPeerIsClosedAtTheTimeout() throws {
        let s = try VsockSession(timeoutMs: 100)
        let peer = try HostPeer.connect(s.uds)
        peer.send("CONN")
        #expect(peer.closedByPeer())
        #expect(s.backend.countersNow()["host_rejected"] == 1)
    }

    @Test func theGuestReachesAHostListenerOnUdsPathUnderscorePort() throws {
        let s = try VsockSession()
        let listener = try HostListenerSocket(s.uds + "_1234")
        try s.driver.send(s.packet(Op.request, from: 777, to: 1234))
        let (resp, _) = try s.driver.receive(op: Op.response, port: 777)
        #expect(resp.srcPort == 1234 && resp.srcCID == 2 && resp.dstCID == 3 && resp.bufAlloc == VsockQueueHandler.bufAlloc)
        let peer = try #require(listener.accept())
        try s.driver.send(s.packet(Op.rw, from: 777, to: 1234, payload: Array("ping".utf8)))
        #expect(peer.read(4) == Array("ping".utf8))
        peer.send("pong")
        #expect(try s.guestReceives(4, port: 777) == Array("pong".utf8))
        // The host closes: the guest hears SHUTDOWN(SEND), then closes itself.
        close(peer.fd)
        let (shut, _) = try s.driver.receive(op: Op.shutdown, port: 777)
        #expect(shut.flags & 2 != 0)
        try s.driver.send(s.packet(Op.shutdown, from: 777, to: 1234, flags: 3))
        _ = try s.driver.receive(op: Op.rst, port: 777)
        #expect(s.backend.handlerConnectionCount == 0)
    }

    @Test func nothingListeningOnThePortIsAnRST() throws {
        let s = try VsockSession()
        try s.driver.send(s.packet(Op.request, from: 5, to: 4242))
        let (rst, _) = try s.driver.receive(op: Op.rst, port: 5)
        #expect(rst.srcPort == 4242)
        #expect(s.backend.countersNow()["errors_host_connect"] == 1)
    }

    @Test func creditRequestIsAnsweredWithOurCredit() throws {
        let s = try VsockSession()
        let (_, hostPort) = try s.hostConnect(guestPort: 9)
        try s.driver.send(s.packet(Op.creditRequest, from: 9, to: hostPort))
        let (u, _) = try s.driver.receive(op: Op.creditUpdate, port: 9)
        #expect(u.bufAlloc == VsockQueueHandler.bufAlloc && u.fwdCnt == 0)
    }

    /// The guest offers 4096 bytes of credit; the host writes far more: exactly 4096
    /// reach the guest, the rest stays in the host's socket until credit comes.
    @Test func hostDataStopsAtTheGuestsCredit() throws {
        let s = try VsockSession()
        let (peer, hostPort) = try s.hostConnect(guestPort: 11, bufAlloc: 4096)
        _ = volt_set_nonblocking(peer.fd)
        var sent = 0
        let chunk = [UInt8](repeating: 0x5A, count: 65536)
        while true {
            let n = chunk.withUnsafeBytes { write(peer.fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            sent += n
        }
        #expect(sent > 4096)
        // The device delivers the guest's credit's worth (when its thread gets to the
        // host socket), then nothing more: a credit request is answered after whatever
        // the device had queued before it, and that must hold no data.
        #expect(try s.guestReceives(4096, port: 11).count == 4096)
        try s.driver.send(s.packet(Op.creditRequest, from: 11, to: hostPort, bufAlloc: 4096))
        let (_, before) = try s.driver.receive(op: Op.creditUpdate, port: 11)
        let delivered = before.filter { $0.op == Op.rw }.reduce(0) { $0 + $1.payload.count }
        #expect(delivered == 0)
        // The guest consumed it all: 4096 more.
        try s.driver.send(s.packet(Op.creditUpdate, from: 11, to: hostPort, fwdCnt: 4096, bufAlloc: 4096))
        #expect(try s.guestReceives(4096, port: 11).count == 4096)
    }

    /// A host listener that never reads: the guest may send its credit (256 KiB) beyond
    /// what the host socket buffer holds, never more; one byte over is a reset.
    @Test func aHostPeerThatNeverReadsBoundsWhatTheWorkerHolds() throws {
        let s = try VsockSession()
        let listener = try HostListenerSocket(s.uds + "_80")
        try s.driver.send(s.packet(Op.request, from: 81, to: 80))
        let (resp, _) = try s.driver.receive(op: Op.response, port: 81)
        let peer = try #require(listener.accept())
        var credit = Int(resp.bufAlloc) - 0
        var fwd = resp.fwdCnt
        var sent = 0
        let payload = [UInt8](repeating: 1, count: 65536)
        // Send while credit lasts, as a driver does, taking credit updates as they come.
        var rounds = 0
        while rounds < 200 {
            rounds += 1
            if credit <= 0 {
                try s.driver.send(s.packet(Op.creditRequest, from: 81, to: 80))
                let (u, _) = try s.driver.receive(op: Op.creditUpdate, port: 81)
                fwd = u.fwdCnt
                credit = Int(u.bufAlloc) - (sent - Int(fwd))
                if credit <= 0 { break }
            }
            let n = min(credit, payload.count)
            try s.driver.send(s.packet(Op.rw, from: 81, to: 80, payload: Array(payload[..<n])))
            sent += n
            credit -= n
        }
        #expect(credit <= 0, "the host never reads: credit runs out")
        let held = sent - Int(fwd)
        #expect(held == Int(VsockQueueHandler.bufAlloc), "the worker holds exactly the credit it gave: \(held)")
        // One byte more than the credit: the connection is reset.
        try s.driver.send(s.packet(Op.rw, from: 81, to: 80, payload: [1]))
        _ = try s.driver.receive(op: Op.rst, port: 81)
        #expect(s.backend.countersNow()["errors_credit"] == 1)
        withExtendedLifetime(peer) {}
    }

    @Test func manyConnectionsAtOnce() throws {
        let s = try VsockSession(rxBuffers: 128)
        var peers: [(HostPeer, UInt32, UInt32)] = []
        for i in 0..<40 {
            let port = UInt32(1000 + i)
            let (p, hostPort) = try s.hostConnect(guestPort: port)
            peers.append((p, hostPort, port))
        }
        #expect(Set(peers.map(\.1)).count == 40, "each its own host port")
        for (p, _, port) in peers { p.send("to guest \(port)") }
        var got: [UInt32: [UInt8]] = [:]
        while got.values.reduce(0, { $0 + $1.count }) < peers.reduce(0, { $0 + "to guest \($1.2)".utf8.count }) {
            let p = try s.driver.receive()
            if p.op == Op.rw { got[p.dstPort, default: []] += p.payload }
        }
        for (_, _, port) in peers { #expect(got[port] == Array("to guest \(port)".utf8)) }
        for (p, hostPort, port) in peers {
            try s.driver.send(s.packet(Op.rw, from: port, to: hostPort, payload: Array("to host \(port)".utf8)))
            #expect(p.read("to host \(port)".utf8.count) == Array("to host \(port)".utf8))
        }
    }

    @Test func transportResetIsSentOnceTheEventQueueRuns() throws {
        let s = try VsockSession(transportReset: true)
        let sub = try s.fe.submit(queue: 2, [.writable(8)])
        try s.fe.kick(queue: 2)
        let c = try s.fe.waitForCompletion(of: sub)
        #expect(c.length == 4)
        #expect(try s.fe.read(sub.buffers[0], count: 4) == [0, 0, 0, 0], "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET")
        #expect(s.backend.countersNow()["transport_resets"] == 1)
    }
}

extension DeviceBackend {
    /// The vsock handler's live connections (under its thread's lock).
    var handlerConnectionCount: Int {
        withThread(0) { _, handler in (handler as? VsockQueueHandler)?.connectionCount ?? -1 }
    }
}
