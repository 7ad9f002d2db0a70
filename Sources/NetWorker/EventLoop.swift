import CShim
import Glibc
import IPC

/// One thread per queue pair, blocked in epoll on: the RX and TX kick eventfds, the
/// pair's TAP queue (input only while the guest offers RX buffers; output only while a
/// write would block), a wake eventfd the control thread uses after changing state, and
/// on pair 0 the control queue's kick. The state it serves is guarded by `lock`; the
/// control thread (vhost-user messages) takes the same lock, so a queue never changes
/// under a running batch and GET_VRING_BASE sees a quiescent ring.
final class PairWorker: @unchecked Sendable {
    // @unchecked: every mutable property is only touched with `lock` held.
    enum Tag: UInt64 { case wake = 0, rxKick, txKick, tap, controlKick }

    let index: Int
    let lock = Lock()
    let handler: QueueHandler
    /// Pair 0 only, when the device has a control queue.
    let control: ControlQueue?

    private let epoll: OwnedFD
    private let wake: OwnedFD
    private var kicks: [Tag: OwnedFD] = [:]
    private var tapEvents: UInt32 = 0
    private var stopping = false
    private var thread: WorkerThread?
    private let metrics: MetricsPublisher?
    private var published = Metrics()

    init(index: Int, tap: Tap, control: ControlQueue?, metrics: MetricsPublisher? = nil,
         faults: FaultInjector = FaultInjector([])) throws(NetWorkerError) {
        self.index = index
        self.metrics = metrics
        self.handler = QueueHandler(pairIndex: index, tap: tap, faults: faults)
        self.control = control
        let ep = volt_epoll_create()
        guard ep >= 0 else { throw .system("epoll_create1", errno: -ep) }
        epoll = OwnedFD(taking: ep)
        wake = try makeEventFD()
        try add(wake.rawValue, events: VOLT_EPOLLIN, tag: .wake)
        try add(tap.fd.rawValue, events: 0, tag: .tap)
    }

    func start() throws(NetWorkerError) {
        thread = try WorkerThread.start(name: "net-pair\(index)") { [self] in run() }
    }

    /// Ends the thread and waits for it (tests; the worker process just exits).
    func shutdown() {
        lock.withLock { stopping = true }
        signalEventFD(wake.rawValue)
        thread?.join()
        thread = nil
    }

    /// Runs `body` with the lock held, then wakes the thread so it re-evaluates its state.
    func update<R>(_ body: () throws -> R) rethrows -> R {
        let r = try lock.withLock(body)
        signalEventFD(wake.rawValue)
        return r
    }

    /// Replaces a kick fd (caller holds the lock, through `update`).
    func setKick(_ tag: Tag, _ fd: OwnedFD?) throws(NetWorkerError) {
        if let old = kicks.removeValue(forKey: tag) { _ = volt_epoll_del(epoll.rawValue, old.rawValue) }
        guard let fd else { return }
        _ = volt_set_nonblocking(fd.rawValue)
        try add(fd.rawValue, events: VOLT_EPOLLIN, tag: tag)
        kicks[tag] = fd
    }

    private func add(_ fd: CInt, events: UInt32, tag: Tag) throws(NetWorkerError) {
        let r = volt_epoll_add(epoll.rawValue, fd, events, tag.rawValue)
        guard r >= 0 else { throw .system("epoll_ctl(ADD)", errno: -r) }
    }

    private func run() {
        var tags = [UInt64](repeating: 0, count: 16)
        var events = [UInt32](repeating: 0, count: 16)
        var again = true   // process once at start
        var pollRings = false
        while true {
            var n: CInt = 0
            if !again {
                // A running queue without a kick fd is polled (vhost-user allows that).
                n = volt_epoll_wait(epoll.rawValue, &tags, &events, 16, pollRings ? 10 : -1)
                if n < 0 && n != -EINTR {
                    logLine("pair \(index): epoll_wait failed: \(errnoText(-n))")
                    return
                }
            }
            let exit: Bool = lock.withLock {
                if stopping { return true }
                for i in 0..<Int(max(n, 0)) {
                    guard let tag = Tag(rawValue: tags[i]) else { continue }
                    switch tag {
                    case .wake: drainEventFD(wake.rawValue)
                    case .rxKick:
                        if let fd = kicks[.rxKick], drainEventFD(fd.rawValue) { handler.metrics.kicks += 1 }
                        handler.rxKicked()
                    case .txKick:
                        if let fd = kicks[.txKick], drainEventFD(fd.rawValue) { handler.metrics.kicks += 1 }
                    case .controlKick:
                        if let fd = kicks[.controlKick], drainEventFD(fd.rawValue) { handler.metrics.kicks += 1 }
                    case .tap:
                        if events[i] & VOLT_EPOLLOUT != 0 { handler.tapWritable() }
                        if events[i] & (VOLT_EPOLLERR | VOLT_EPOLLHUP) != 0 {
                            // Reported even with no events asked for: drop the fd from the set
                            // rather than spin on it.
                            logLine("pair \(index): TAP \(handler.tap.name) reported an error; RX and TX stop")
                            handler.tapBroken()
                            handler.txRunning = false
                            _ = volt_epoll_del(epoll.rawValue, handler.tap.fd.rawValue)
                            tapEvents = UInt32.max
                        }
                    }
                }
                control?.process()
                let txMore = handler.processTX()
                let rxMore = handler.processRX()
                again = txMore || rxMore
                pollRings = (handler.txRunning && kicks[.txKick] == nil) || (handler.rxRunning && kicks[.rxKick] == nil)
                updateTapInterest()
                metrics?.publish(handler.metrics, since: &published)
                return false
            }
            if exit { return }
        }
    }

    private func updateTapInterest() {
        var wanted: UInt32 = 0
        if handler.wantsTapInput { wanted |= VOLT_EPOLLIN }
        if handler.wantsTapOutput { wanted |= VOLT_EPOLLOUT }
        guard wanted != tapEvents, tapEvents != UInt32.max else { return }
        if volt_epoll_mod(epoll.rawValue, handler.tap.fd.rawValue, wanted, Tag.tap.rawValue) >= 0 { tapEvents = wanted }
    }
}
