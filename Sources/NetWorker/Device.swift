import CShim
import Glibc
import IPC
import SystemPackage
import VirtioCore

/// What the command line decided about the device.
struct NetDeviceConfig: Equatable {
    var mac: [UInt8]?
    var mtu: UInt16?
    var queuePairs: Int = 1
    // QEMU's virtio-mmio offers up to 1024 and Linux takes the maximum.
    var queueSize: Int = 1024
    /// Injected faults (`--fault`).
    var faults: [FaultSpec] = []
}

/// The vhost-user-net device: features, config space, and the queue pairs' workers.
/// Queues 2i / 2i+1 are pair i's RX / TX; with more than one pair, queue 2N is the
/// control queue. All VhostUserDevice calls come from the one vhost-user thread.
final class NetDevice: VhostUserDevice {
    let config: NetDeviceConfig
    let taps: [Tap]
    let workers: [PairWorker]
    let control: ControlQueue?
    /// TUN_F_* offloads the TAP accepts (probed at start).
    let tapOffloads: UInt32
    /// Test hook: the TUNSETOFFLOAD value last applied.
    private(set) var appliedOffload: UInt32 = 0
    private(set) var ackedFeatures: UInt64 = 0
    private var memory: MemoryMap?
    private var setups: [Int: QueueSetup] = [:]
    /// Pairs the driver enabled with VQ_PAIRS_SET (1 until then, 5.1.6.5.5).
    /// Guards `activePairCount` and `controlStarted` (read on pair 0's thread too).
    private let activePairs = Lock()
    private var activePairCount = 1
    private var controlStarted = false

    /// `metrics`: where the counters are published for the VMM (nil: nowhere).
    init(config: NetDeviceConfig, taps: [Tap], metrics: MetricsPublisher? = nil) throws(NetWorkerError) {
        guard taps.count == config.queuePairs, !taps.isEmpty else {
            throw .usage("\(taps.count) TAP queue(s) for \(config.queuePairs) queue pair(s)", fix: "pass one --tap-fd per queue pair, or --tap NAME")
        }
        self.config = config
        self.taps = taps
        tapOffloads = taps[0].supportedOffloads()
        let control = config.queuePairs > 1 ? ControlQueue(maxPairs: config.queuePairs) : nil
        var workers: [PairWorker] = []
        let faults = FaultInjector(config.faults)
        for (i, tap) in taps.enumerated() {
            workers.append(try PairWorker(index: i, tap: tap, control: i == 0 ? control : nil, metrics: metrics, faults: faults))
        }
        self.workers = workers
        self.control = control
    }

    // MARK: Features and config

    var deviceFeatures: UInt64 {
        var f = NetFeature.version1 | NetFeature.status | NetFeature.mtu | NetFeature.mrgRxbuf
            | NetFeature.eventIdx | NetFeature.indirectDesc | NetDeviceModel.offloadFeatures(tapOffloads: tapOffloads)
        if config.mac != nil { f |= NetFeature.mac }
        if config.queuePairs > 1 { f |= NetFeature.mq | NetFeature.ctrlVQ }
        return f
    }

    var protocolFeatures: UInt64 { .protocolFeatures(.mq, .replyAck, .config) }
    var queueCount: Int { config.queuePairs > 1 ? 2 * config.queuePairs + 1 : 2 }
    var maxQueueSize: Int { config.queueSize }

    /// struct virtio_net_config (5.1.4): mac, status, max_virtqueue_pairs, mtu, then zeros.
    func configBytes() -> [UInt8] {
        NetDeviceModel.configBytes(mac: config.mac, queuePairs: config.queuePairs, mtu: config.mtu)
    }

    func config(offset: UInt32, size: UInt32) throws -> [UInt8] {
        guard UInt64(offset) + UInt64(size) <= UInt64(VhostUser.maxConfigSize) else {
            throw NetWorkerError.usage("config read past 256 bytes", fix: "read inside the config space")
        }
        let bytes = configBytes()
        return (Int(offset)..<Int(offset + size)).map { $0 < bytes.count ? bytes[$0] : 0 }
    }

    /// The config space is read-only for the driver (5.1.4: all fields are device-written).
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws {}

    func setFeatures(_ acked: UInt64) throws {
        ackedFeatures = acked
        let offload = NetDeviceModel.tapOffload(acked: acked)
        for tap in taps {
            let r = tap.setOffload(offload)
            if r < 0 { throw NetWorkerError.tap("TUNSETOFFLOAD 0x\(String(offload, radix: 16)) on \(tap.name)", errno: -r, fix: "use a kernel whose tun driver supports these offloads") }
        }
        appliedOffload = offload
        for w in workers {
            w.update {
                w.handler.mergeable = acked & NetFeature.mrgRxbuf != 0
                w.handler.guestCsum = acked & NetFeature.guestCsum != 0
            }
        }
    }

    // MARK: Memory and queues

    func setMemoryTable(_ regions: [IPC.MemoryRegionDescriptor]) throws {
        let map = try MemoryMap(vhostUser: regions)
        memory = map
        // Running queues move to the new map at the same ring positions.
        for (index, setup) in setups {
            try withQueue(index) { slot in
                guard let old = slot.pointee else { return }
                var q = try makeQueue(index, setup, map)
                q.nextAvail = old.nextAvail
                q.nextUsed = old.nextUsed
                slot.pointee = q
            }
        }
    }

    private func makeQueue(_ index: Int, _ setup: QueueSetup, _ map: MemoryMap) throws -> Virtqueue {
        let n = UInt64(setup.size)
        let desc = try map.guestAddress(ofUser: setup.descriptorTable, length: 16 * n)
        let avail = try map.guestAddress(ofUser: setup.availableRing, length: 6 + 2 * n)
        let used = try map.guestAddress(ofUser: setup.usedRing, length: 6 + 8 * n)
        // The used index continues from what the guest last saw.
        let usedIndex = try map.load(UInt16.self, at: GuestAddress(used.rawValue + 2))
        return try Virtqueue(memory: map, size: UInt32(setup.size), descriptorTable: desc, availableRing: avail,
                             usedRing: used, eventIdx: ackedFeatures & NetFeature.eventIdx != 0,
                             nextAvail: setup.nextAvailIndex, nextUsed: usedIndex)
    }

    private enum Role { case rx(PairWorker), tx(PairWorker), control(PairWorker, ControlQueue) }

    private func role(_ index: Int) throws -> Role {
        if index < 2 * workers.count {
            let w = workers[index / 2]
            return index % 2 == 0 ? .rx(w) : .tx(w)
        }
        guard let control, index == 2 * workers.count else { throw NetWorkerError.badQueue(index, "no such queue") }
        return .control(workers[0], control)
    }

    /// Runs `body` on the queue's Virtqueue slot under its pair's lock.
    private func withQueue(_ index: Int, _ body: (UnsafeMutablePointer<Virtqueue?>) throws -> Void) throws {
        var slot: Virtqueue?
        switch try role(index) {
        case let .rx(w): try w.update { slot = w.handler.rx; try body(&slot); w.handler.rx = slot }
        case let .tx(w): try w.update { slot = w.handler.tx; try body(&slot); w.handler.tx = slot }
        case let .control(w, c): try w.update { slot = c.queue; try body(&slot); c.queue = slot }
        }
    }

    func configureQueue(_ index: Int, _ setup: QueueSetup) throws {
        guard let memory else { throw NetWorkerError.badQueue(index, "no memory table") }
        let q = try makeQueue(index, setup, memory)
        setups[index] = setup
        try withQueue(index) { $0.pointee = q }
    }

    func setQueueKick(_ index: Int, fd: OwnedFD?) throws {
        switch try role(index) {
        case let .rx(w): try w.update { try w.setKick(.rxKick, fd) }
        case let .tx(w): try w.update { try w.setKick(.txKick, fd) }
        case let .control(w, _): try w.update { try w.setKick(.controlKick, fd) }
        }
    }

    func setQueueCall(_ index: Int, fd: OwnedFD?) throws {
        switch try role(index) {
        case let .rx(w): w.update { w.handler.rxCall = fd }
        case let .tx(w): w.update { w.handler.txCall = fd }
        case let .control(w, c): w.update { c.call = fd }
        }
    }

    func startQueue(_ index: Int) throws {
        switch try role(index) {
        case let .rx(w):
            w.update { w.handler.rxRunning = true; w.handler.rxKicked() }
            updateAttachment()
        case let .tx(w): w.update { w.handler.txRunning = true; w.handler.tapWritable() }
        case let .control(w, c):
            w.update { c.running = true }
            activePairs.withLock { controlStarted = true }
            updateAttachment()
        }
    }

    func disableQueue(_ index: Int) throws {
        switch try role(index) {
        case let .rx(w):
            w.update { w.handler.rxRunning = false }
            updateAttachment()
        case let .tx(w): w.update { w.handler.txRunning = false }
        case let .control(w, c): w.update { c.running = false }
        }
    }

    func stopQueue(_ index: Int) throws -> UInt16 {
        setups[index] = nil
        var next: UInt16 = 0
        switch try role(index) {
        case let .rx(w):
            w.update {
                w.handler.rxRunning = false
                w.handler.releaseRX()
                next = w.handler.rx?.nextAvail ?? 0
                w.handler.rx = nil
            }
            try setQueueKick(index, fd: nil)
            updateAttachment()
        case let .tx(w):
            w.update {
                w.handler.txRunning = false
                next = w.handler.tx?.nextAvail ?? 0
                w.handler.tx = nil
            }
            try setQueueKick(index, fd: nil)
        case let .control(w, c):
            w.update {
                c.running = false
                next = c.queue?.nextAvail ?? 0
                c.queue = nil
            }
            try setQueueKick(index, fd: nil)
            activePairs.withLock { controlStarted = false }
            updateAttachment()
        }
        return next
    }

    func reset() {
        for i in 0..<queueCount where setups[i] != nil { _ = try? stopQueue(i) }
        ackedFeatures = 0
        activePairs.withLock { activePairCount = 1 }
        memory = nil
    }

    // MARK: Multiqueue

    /// VQ_PAIRS_SET from the control queue (called on pair 0's thread).
    func setActivePairs(_ count: Int) -> Bool {
        guard count >= 1, count <= workers.count else { return false }
        activePairs.withLock { activePairCount = count }
        updateAttachment()
        return true
    }

    /// Attaches the TAP queue of every pair that should receive, detaches the others, so
    /// the kernel never steers frames to a pair the guest does not serve. A pair receives
    /// when its RX ring runs and, once the control queue is in use, it is among the active
    /// pairs (a front-end that handles the control queue itself enables rings instead).
    private func updateAttachment() {
        guard workers.count > 1, taps.allSatisfy(\.multiQueue) else { return }
        let (active, controlled) = activePairs.withLock { (activePairCount, controlStarted) }
        for (i, w) in workers.enumerated() where i > 0 {
            w.update {
                let want = w.handler.rxRunning && (!controlled || i < active)
                if want != w.handler.tapAttached, w.handler.tap.setAttached(want) >= 0 {
                    w.handler.tapAttached = want
                }
            }
        }
    }

    // MARK: Lifecycle

    func start() throws(NetWorkerError) {
        control?.setPairsHandler = { [unowned self] n in setActivePairs(n) }
        updateAttachment()
        for w in workers { try w.start() }
    }

    func shutdown() {
        for w in workers { w.shutdown() }
    }

    /// Counters summed over all pairs.
    func metrics() -> Metrics {
        workers.reduce(Metrics()) { sum, w in sum + w.lock.withLock { w.handler.metrics } }
    }
}
