import VoltTestSupport
import CShim
import Foundation
import IPC
import NetTestShim
@testable import NetWorker
import VirtioCore
import WorkerCore

/// A NetDevice in-process on a real TAP inside its own namespace, driven through
/// DriverQueues on memfd guest memory (what a guest driver would do), with an AF_PACKET
/// peer socket on the TAP.
final class DeviceHarness {
    static let memorySize: UInt64 = 8 << 20
    static let ethertype = 0x88b5
    static let headerSize = 12

    let ns: NetNamespace
    let net: NetDevice
    let backend: DeviceBackend
    let file: GuestMemoryFile
    let map: MemoryMap
    var rx: DriverQueue
    var tx: DriverQueue
    let peer: CInt
    private var kicks: [CInt] = []
    private var nextData: UInt64 = 0x100000

    init(features: UInt64, queueSize: UInt16 = 64, config: NetDeviceConfig = NetDeviceConfig()) throws {
        ns = try NetNamespace()
        do {
            let (taps, peer) = try ns.inside { () throws -> ([Tap], CInt) in
                (try Tap.open(name: "vt0", count: 1), nts_packet_socket("vt0", CInt(DeviceHarness.ethertype)))
            }
            guard peer >= 0 else { throw NetWorkerError.system("packet socket", errno: -peer) }
            self.peer = peer
            net = try NetDevice(config: config, taps: taps)
            backend = try DeviceBackend(device: net)
            try backend.start()
            file = try GuestMemoryFile(size: Self.memorySize)
            map = try MemoryMap(frontend: file, regions: [FrontendRegion(guestAddress: GuestAddress(0), size: Self.memorySize, fileOffset: 0)])
            rx = try DriverQueue(memory: map, size: queueSize, at: GuestAddress(0x1000))
            tx = try DriverQueue(memory: map, size: queueSize, at: GuestAddress(0x8000))
        } catch {
            ns.delete()
            throw error
        }
        try backend.setFeatures(features)
        try backend.setMemoryTable([IPC.MemoryRegionDescriptor(
            region: MemoryRegion(guestAddress: 0, size: Self.memorySize, userAddress: file.userAddress(atOffset: 0), mmapOffset: 0),
            fd: OwnedFD(taking: dup(file.fd.rawValue)))])
        for (i, q) in [rx, tx].enumerated() {
            try backend.configureQueue(i, QueueSetup(size: q.size, descriptorTable: user(q.descriptorTable),
                                                    availableRing: user(q.availableRing), usedRing: user(q.usedRing),
                                                    nextAvailIndex: 0))
            let kick = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
            kicks.append(kick)
            try backend.setQueueKick(i, fd: OwnedFD(taking: dup(kick)))
            try backend.setQueueCall(i, fd: OwnedFD(taking: volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)))
            try backend.startQueue(i)
        }
    }

    func close() {
        backend.shutdown()
        Glibc.close(peer)
        for k in kicks { Glibc.close(k) }
        ns.delete()
    }

    /// The worker's counters now (every pair thread's last turn included), by the names
    /// the VMM reads.
    func metrics() -> CounterValues { CounterValues(backend.countersNow()) }

    private func user(_ a: GuestAddress) -> UInt64 { file.userAddress(atOffset: a.rawValue) }

    /// A fresh data area of `length` bytes in guest memory.
    func allocate(_ length: Int) -> GuestAddress {
        let a = GuestAddress(nextData)
        nextData += UInt64((length + 63) & ~63)
        return a
    }

    func kick(_ queue: Int) {
        var one: UInt64 = 1
        _ = write(kicks[queue], &one, 8)
    }

    /// An Ethernet frame: broadcast, ethertype 0x88b5, `text` then a byte pattern, `length` bytes.
    static func frame(_ text: String, length: Int = 60) -> [UInt8] {
        var f: [UInt8] = Array(repeating: 0xff, count: 6) + [0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5] + Array(text.utf8)
        var i = 0
        while f.count < length { f.append(UInt8(truncatingIfNeeded: i * 7 + 3)); i += 1 }
        return f
    }

    /// Guest sends `bytes` (header included) as a chain split into `pieces` readable buffers.
    @discardableResult
    func guestSend(_ bytes: [UInt8], pieces: [Int]? = nil) throws -> UInt16 {
        let sizes = pieces ?? [Self.headerSize, bytes.count - Self.headerSize]
        var buffers: [DriverBuffer] = []
        var offset = 0
        for s in sizes {
            let a = allocate(s)
            try map.write(Array(bytes[offset..<(offset + s)]), at: a)
            buffers.append(DriverBuffer(a, length: UInt32(s)))
            offset += s
        }
        let head = try tx.addChain(buffers)
        try tx.publish()
        kick(1)
        return head
    }

    /// Posts `count` RX chains of one writable buffer of `size` bytes; returns their addresses by head.
    @discardableResult
    func postRX(count: Int, size: Int, kick: Bool = true) throws -> [UInt16: GuestAddress] {
        var posted: [UInt16: GuestAddress] = [:]
        for _ in 0..<count {
            let a = allocate(size)
            posted[try rx.addChain([DriverBuffer(a, length: UInt32(size), writable: true)])] = a
        }
        try rx.publish()
        if kick { self.kick(0) }
        return posted
    }

    /// Waits for the next used element of a queue.
    func waitUsed(_ queue: Int, timeout: Double = 5) throws -> (id: UInt32, length: UInt32)? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let u = queue == 0 ? try rx.popUsed() : try tx.popUsed() { return u }
            usleep(1000)
        }
        return nil
    }

    /// Next 0x88b5 frame seen by the peer on the TAP (nil on timeout).
    func peerReceive(timeout: Int32 = 3000) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 70000)
        let n = nts_packet_recv(peer, &buf, buf.count, timeout)
        return n > 0 ? Array(buf[..<Int(n)]) : nil
    }

    func peerSend(_ frame: [UInt8]) -> Bool {
        nts_packet_send(peer, frame, frame.count) == frame.count
    }
}

/// Counter values by name, with the fields the tests check.
struct CounterValues {
    let values: [String: UInt64]
    init(_ values: [String: UInt64]) { self.values = values }
    subscript(_ name: String) -> UInt64 { values[name] ?? 0 }
    var txFrames: UInt64 { self["tx_frames"] }
    var txBytes: UInt64 { self["tx_bytes"] }
    var rxFrames: UInt64 { self["rx_frames"] }
    var txDroppedMalformed: UInt64 { self["tx_dropped_malformed"] }
    var rxDroppedTooBig: UInt64 { self["rx_dropped_too_big"] }
    var rxDroppedNoBuffers: UInt64 { self["rx_dropped_no_buffers"] }
    var rxMalformedChains: UInt64 { self["rx_malformed_chains"] }
    var faultsInjected: UInt64 { self["faults_injected"] }
}

/// volt-net-worker's command line.
typealias Options = WorkerArguments<NetArguments>
