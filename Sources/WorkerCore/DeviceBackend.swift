import CShim
import Glibc
import IPC
import VirtioCore

/// The vhost-user back-end every worker runs: it implements `VhostUserDevice` (the
/// protocol side is `BackendRequestHandler`'s) for any `BackendDevice`. It owns the
/// rings and their fds, the memory map, the inflight buffer, the queue threads and the
/// counters; the device supplies features, config space and per-thread handlers.
///
/// Ring changes are applied under the owning thread's lock (`QueueThread.withContext`),
/// so a handler never runs while its ring is being changed: stopping a ring returns
/// the exact next available index, and a new memory table moves running rings to the
/// new map at the same positions.
public final class DeviceBackend: VhostUserDevice {
    public let device: any BackendDevice
    public let counters: CounterPublisher
    let threads: [QueueThread]
    /// Queue index -> (thread, slot in that thread's rings).
    private let placement: [(thread: Int, slot: Int)]
    private var memory: MemoryMap?
    private var ackedFeatures: UInt64 = 0
    /// The inflight buffer (GET_INFLIGHT_FD made it, or SET_INFLIGHT_FD handed over a
    /// previous worker's): rings configured after it is set track and recover with it.
    private(set) var inflight: InflightBuffer?
    /// The memfd GET_INFLIGHT_FD hands out, made before the sandbox (`InflightBuffer.reserve`).
    private let reservedInflight: OwnedFD?

    /// `metrics`: the VMM's page (`--metrics-fd`); without one the counters go to a
    /// private page. Builds every thread (wake fd, handler) now: call before
    /// the sandbox.
    public init(device: any BackendDevice, metrics page: MetricsPage? = nil) throws {
        self.device = device
        let layout = device.threadLayout
        var placement = [(thread: Int, slot: Int)?](repeating: nil, count: device.queueCount)
        for (t, queues) in layout.enumerated() {
            guard queues.count <= 64 else { throw WorkerError.usage("thread \(t) serves \(queues.count) queues, at most 64") }
            for (slot, q) in queues.enumerated() {
                guard q >= 0, q < device.queueCount, placement[q] == nil else {
                    throw WorkerError.usage("thread layout \(layout) does not place each of \(device.queueCount) queues once")
                }
                placement[q] = (t, slot)
            }
        }
        guard placement.allSatisfy({ $0 != nil }) else {
            throw WorkerError.usage("thread layout \(layout) leaves a queue without a thread")
        }
        self.placement = placement.map { $0! }
        let publisher = try CounterPublisher(page: try page ?? MetricsPage.create(), deviceNames: device.counterNames)
        counters = publisher
        threads = try layout.enumerated().map { t, queues in
            try QueueThread(index: t, name: device.threadName(t), queues: queues,
                            handler: try device.makeHandler(thread: t, queues: queues),
                            publisher: publisher, deviceCounters: device.counterNames.count)
        }
        let maxQueues = UInt16(clamping: device.queueCount), maxSize = UInt16(clamping: device.maxQueueSize)
        reservedInflight = device.protocolFeatures & ProtocolFeature.inflightShmfd.mask != 0
            ? try? InflightBuffer.reserve(numQueues: maxQueues, maxQueueSize: maxSize) : nil
    }

    deinit { shutdown() }

    /// Starts every queue thread (after the sandbox: threads inherit it), then tells the
    /// device. A ring that starts later finds its thread running; one started without
    /// this (tests) starts its thread itself.
    public func start() throws {
        for t in threads { try t.start() }
        device.started(self)
    }

    /// Ends every queue thread (tests; a worker process just exits).
    public func shutdown() {
        for t in threads { t.shutdown() }
    }

    // MARK: - Features and config

    public var deviceFeatures: UInt64 { device.features }
    public var protocolFeatures: UInt64 { device.protocolFeatures }
    public var queueCount: Int { device.queueCount }
    public var maxQueueSize: Int { device.maxQueueSize }

    public func setFeatures(_ acked: UInt64) throws {
        try device.setFeatures(acked)
        ackedFeatures = acked
        for t in threads { t.withContext { _, handler in handler.featuresAcked(acked) } }
    }

    public func config(offset: UInt32, size: UInt32) throws -> [UInt8] { try device.config(offset: offset, size: size) }

    public func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws {
        try device.setConfig(offset: offset, data: data, liveMigration: liveMigration)
    }

    // MARK: - Memory and rings

    public func setMemoryTable(_ regions: [IPC.MemoryRegionDescriptor]) throws {
        let map = try MemoryMap(vhostUser: regions)
        // Rings keep their positions; each thread moves between two handler calls.
        for t in threads {
            t.withContext { context, _ in
                for slot in context.rings.indices where context.rings[slot].setup != nil {
                    build(&context.rings[slot], on: map, counters: &context.counters)
                }
            }
        }
        memory = map
    }

    public func configureQueue(_ index: Int, _ setup: QueueSetup) throws {
        withRing(index) { ring, counters, _ in
            ring.setup = setup
            ring.queue = nil
            ring.broken = nil
            ring.inflight = nil
            ring.resubmit = []
            guard let memory else { return }
            build(&ring, on: memory, counters: &counters)
        }
    }

    /// (Re)builds `ring.queue` over `map`. An existing queue keeps its positions (and its
    /// inflight state); a new one continues from the used index the ring holds (the
    /// driver zeroes it on a fresh start; after GET/SET_VRING_BASE it is where the device
    /// left it) and, with an inflight buffer, first recovers it ("When reconnecting"):
    /// heads still inflight are resubmitted in fetch order, and the available ring is
    /// read from used.idx + their count, whatever SET_VRING_BASE said. A ring whose
    /// addresses do not fit guest memory is unusable (reported, never processed)
    /// instead of ending the device.
    private func build(_ ring: inout Ring, on map: MemoryMap, counters: inout Counters) {
        guard let setup = ring.setup else { return }
        let old = ring.queue
        let n = setup.size
        do {
            let desc = try map.guestAddress(ofUser: setup.descriptorTable, length: SplitRingLayout.descriptorTableSize(n))
            let avail = try map.guestAddress(ofUser: setup.availableRing, length: SplitRingLayout.availableRingSize(n))
            let used = try map.guestAddress(ofUser: setup.usedRing, length: SplitRingLayout.usedRingSize(n))
            let nextUsed = try old?.nextUsed ?? map.load(UInt16.self, at: used.adding(UInt64(SplitRingLayout.indexOffset)))
            var nextAvail = old?.nextAvail ?? setup.nextAvailIndex
            if old == nil, ring.inflight == nil, var tracking = inflight?.queue(ring.index, ringSize: n) {
                let resubmit = tracking.recover(ringUsedIndex: nextUsed)
                nextAvail = nextUsed &+ UInt16(truncatingIfNeeded: resubmit.count)
                ring.inflight = tracking
                ring.resubmit = resubmit
                if !resubmit.isEmpty {
                    WorkerLog.line("queue \(ring.index): resubmitting \(resubmit.count) request(s) left in flight by the previous worker")
                    counters.resubmitted &+= UInt64(resubmit.count)
                }
            }
            ring.queue = try Virtqueue(memory: map, size: UInt32(n), descriptorTable: desc, availableRing: avail,
                                       usedRing: used, eventIdx: ackedFeatures & VirtioFeature.eventIdx != 0,
                                       nextAvail: nextAvail, nextUsed: nextUsed)
        } catch {
            WorkerLog.line("queue \(ring.index): ring unusable: \(error)")
            counters.brokenRings &+= 1
            if let err = ring.err { EventFD.signal(err.rawValue) }
            ring.queue = nil
        }
    }

    public func setQueueKick(_ index: Int, fd: OwnedFD?) throws {
        withRing(index) { ring, _, context in
            if let old = ring.kick { context.waitSet.remove(old.rawValue) }
            ring.kick = nil
            guard let fd else { return }
            // Drained after each wake-up: it must never block.
            _ = volt_set_nonblocking(fd.rawValue)
            let slot = placement[index].slot
            context.waitSet.add(fd.rawValue, events: UInt32(POLLIN), tag: .kick(slot: slot))
            ring.kick = fd
            // Kicks sent before this fd arrived are in its counter: look at the ring.
            context.kicked |= 1 << UInt64(slot)
        }
    }

    public func setQueueCall(_ index: Int, fd: OwnedFD?) throws {
        withRing(index) { ring, _, _ in ring.call = fd }
    }

    public func setQueueErr(_ index: Int, fd: OwnedFD?) throws {
        withRing(index) { ring, _, _ in ring.err = fd }
    }

    public func startQueue(_ index: Int) throws {
        try threads[placement[index].thread].start()
        withRing(index) { ring, _, context in
            ring.enabled = true
            // Buffers may already be waiting (or a kick was consumed before a restart).
            context.kicked |= 1 << UInt64(placement[index].slot)
        }
        device.queueStateChanged(index, backend: self)
    }

    public func disableQueue(_ index: Int) throws {
        withRing(index) { ring, _, _ in ring.enabled = false }
        device.queueStateChanged(index, backend: self)
    }

    public func stopQueue(_ index: Int) throws -> UInt16 {
        let next = stop(index)
        device.queueStateChanged(index, backend: self)
        return next
    }

    /// GET_VRING_BASE: the handler gives back what it holds, then the ring forgets its
    /// setup, queue and kick fd (call and err stay, as the front-end set them).
    private func stop(_ index: Int) -> UInt16 {
        let (t, slot) = placement[index]
        return threads[t].withContext { context, handler in
            handler.ringStopping(slot, &context)
            var ring = context.rings[slot]
            let next = ring.queue?.nextAvail ?? ring.setup?.nextAvailIndex ?? 0
            if let kick = ring.kick { context.waitSet.remove(kick.rawValue) }
            ring.kick = nil
            ring.setup = nil
            ring.queue = nil
            ring.enabled = false
            ring.broken = nil
            ring.inflight = nil
            ring.resubmit = []
            context.rings[slot] = ring
            return next
        }
    }

    public func getInflight(_ request: InflightDescription) throws -> (InflightDescription, OwnedFD) {
        guard let reservedInflight else { throw DeviceOperationUnsupported(operation: "GET_INFLIGHT_FD") }
        let buffer = try InflightBuffer.create(in: reservedInflight, numQueues: request.numQueues, queueSize: request.queueSize)
        inflight = buffer
        return (buffer.description, buffer.fd)
    }

    public func setInflight(_ description: InflightDescription, fd: OwnedFD) throws {
        guard reservedInflight != nil else { throw DeviceOperationUnsupported(operation: "SET_INFLIGHT_FD") }
        inflight = try InflightBuffer.adopt(description, fd: fd)
    }

    public func reset() {
        for index in 0..<queueCount { _ = stop(index) }
        for t in threads {
            t.withContext { context, _ in
                for slot in context.rings.indices { context.rings[slot] = Ring(index: context.rings[slot].index) }
            }
        }
        memory = nil
        inflight = nil
        ackedFeatures = 0
        device.reset()
    }

    // MARK: - Access for devices and tests

    /// Runs `body` on queue `index`'s ring under its thread's lock.
    private func withRing<R>(_ index: Int, _ body: (inout Ring, inout Counters, inout QueueThreadContext) throws -> R) rethrows -> R {
        let (t, slot) = placement[index]
        return try threads[t].withContext { context, _ in
            var ring = context.rings[slot]
            var counters = context.counters
            defer { context.rings[slot] = ring; context.counters = counters }
            return try body(&ring, &counters, &context)
        }
    }

    /// Runs `body` on thread `index`'s context and handler, under its lock, then wakes it
    /// (a device changing its own per-thread state, e.g. from `queueStateChanged`).
    public func withThread<R>(_ index: Int, _ body: (inout QueueThreadContext, any QueueThreadHandler) throws -> R) rethrows -> R {
        try threads[index].withContext(body)
    }

    public var threadCount: Int { threads.count }

    /// Whether queue `index` is enabled and usable (for tests).
    public func isRunning(_ index: Int) -> Bool {
        let (t, slot) = placement[index]
        return threads[t].withContext { context, _ in context.rings[slot].enabled && context.rings[slot].queue != nil }
    }
}

extension DeviceBackend {
    /// Every counter by name, after each thread published its last turn (each thread's
    /// lock is taken once, so no turn is half counted).
    public func countersNow() -> [String: UInt64] {
        for t in threads { t.withContext { _, _ in } }
        return counters.snapshot()
    }
}
