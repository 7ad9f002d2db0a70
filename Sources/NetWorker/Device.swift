import CShim
import Glibc
import IPC
import SystemPackage
import VirtioCore
import WorkerCore

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

/// The vhost-user-net device: features, config space, and one queue thread per queue
/// pair. Queues 2i / 2i+1 are pair i's RX / TX; with more than one pair, queue 2N is
/// the control queue, served on pair 0's thread. Rings and threads are the framework's.
final class NetDevice: BackendDevice {
    let config: NetDeviceConfig
    let taps: [Tap]
    /// Pair i's data path (the handler of thread i).
    let handlers: [QueueHandler]
    let control: ControlQueue?
    /// TUN_F_* offloads the TAP accepts (probed at start).
    let tapOffloads: UInt32
    /// Test hook: the TUNSETOFFLOAD value last applied.
    private(set) var appliedOffload: UInt32 = 0
    /// Set by the first queue change; used to reach the pair threads' state.
    private weak var backend: DeviceBackend?
    /// Pairs the driver enabled with VQ_PAIRS_SET (1 until then, 5.1.6.5.5), and whether
    /// the control queue is in use. Read on pair 0's thread too.
    private let activePairs = Lock()
    private var activePairCount = 1
    private var controlStarted = false

    init(config: NetDeviceConfig, taps: [Tap]) throws(NetWorkerError) {
        guard taps.count == config.queuePairs, !taps.isEmpty else {
            throw .usage("\(taps.count) TAP queue(s) for \(config.queuePairs) queue pair(s)", fix: "pass one --tap-fd per queue pair, or --tap NAME")
        }
        self.config = config
        self.taps = taps
        tapOffloads = taps[0].supportedOffloads()
        let control = config.queuePairs > 1 ? ControlQueue(maxPairs: config.queuePairs) : nil
        let faults = FaultInjector(config.faults)
        handlers = taps.enumerated().map { i, tap in
            QueueHandler(pairIndex: i, tap: tap, control: i == 0 ? control : nil, faults: faults)
        }
        self.control = control
        control?.setPairsHandler = { [unowned self] n in setActivePairs(n) }
    }

    // MARK: Features and config

    var features: UInt64 {
        var f = NetFeature.version1 | NetFeature.status | NetFeature.mtu | NetFeature.mrgRxbuf
            | NetFeature.eventIdx | NetFeature.indirectDesc | NetDeviceModel.offloadFeatures(tapOffloads: tapOffloads)
        if config.mac != nil { f |= NetFeature.mac }
        if config.queuePairs > 1 { f |= NetFeature.mq | NetFeature.ctrlVQ }
        return f
    }

    var queueCount: Int { config.queuePairs > 1 ? 2 * config.queuePairs + 1 : 2 }
    var maxQueueSize: Int { config.queueSize }
    var counterNames: [String] { NetCounter.names }
    func threadName(_ index: Int) -> String { "net-pair\(index)" }

    /// Pair i: [RX 2i, TX 2i+1]; pair 0 also the control queue.
    var threadLayout: [[Int]] {
        (0..<config.queuePairs).map { i in [2 * i, 2 * i + 1] + (i == 0 && control != nil ? [2 * config.queuePairs] : []) }
    }

    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler { handlers[index] }

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

    /// The TAPs offload what the guest can take; the handlers hear of the features next.
    func setFeatures(_ acked: UInt64) throws {
        let offload = NetDeviceModel.tapOffload(acked: acked)
        for tap in taps {
            let r = tap.setOffload(offload)
            if r < 0 { throw NetWorkerError.tap("TUNSETOFFLOAD 0x\(String(offload, radix: 16)) on \(tap.name)", errno: -r, fix: "use a kernel whose tun driver supports these offloads") }
        }
        appliedOffload = offload
    }

    func reset() {
        activePairs.withLock { activePairCount = 1; controlStarted = false }
    }

    // MARK: Multiqueue

    /// No pair but 0 receives until its RX ring runs.
    func started(_ backend: DeviceBackend) {
        self.backend = backend
        updateAttachment()
    }

    func queueStateChanged(_ queue: Int, backend: DeviceBackend) {
        self.backend = backend
        if control != nil, queue == 2 * config.queuePairs {
            let running = backend.withThread(0) { context, _ in context.rings[QueueHandler.controlSlot].enabled }
            activePairs.withLock { controlStarted = running }
        }
        if queue % 2 == 0 { updateAttachment() }
    }

    /// VQ_PAIRS_SET from the control queue (called on pair 0's thread).
    func setActivePairs(_ count: Int) -> Bool {
        guard count >= 1, count <= handlers.count else { return false }
        activePairs.withLock { activePairCount = count }
        updateAttachment()
        return true
    }

    /// Attaches the TAP queue of every pair that should receive, detaches the others, so
    /// the kernel never steers frames to a pair the guest does not serve. A pair receives
    /// when its RX ring runs and, once the control queue is in use, it is among the active
    /// pairs (a front-end that handles the control queue itself enables rings instead).
    private func updateAttachment() {
        guard handlers.count > 1, taps.allSatisfy(\.multiQueue), let backend else { return }
        let (active, controlled) = activePairs.withLock { (activePairCount, controlStarted) }
        for (i, h) in handlers.enumerated() where i > 0 {
            backend.withThread(i) { context, _ in
                let want = context.rings[QueueHandler.rxSlot].isActive && (!controlled || i < active)
                if want != h.tapAttached, h.tap.setAttached(want) >= 0 {
                    h.tapAttached = want
                }
            }
        }
    }
}
