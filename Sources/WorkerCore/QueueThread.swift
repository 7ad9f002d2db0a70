import CShim
import Glibc
import IPC

/// One thread serving a group of rings: it blocks in epoll on its rings' kick eventfds,
/// a wake eventfd and any device fds, and calls the device's handler with its lock
/// held. The vhost-user thread changes ring state only through `withContext` (same
/// lock, then a wake-up), so every change lands between two handler calls.
///
/// The epoll set and the wake eventfd are made at construction, before the sandbox;
/// the thread itself starts with the first ring that starts.
final class QueueThread: @unchecked Sendable {
    // @unchecked: `context`, `stopping` and `thread` are only touched with `lock` held
    // (or before the thread starts / after it is joined).

    /// A running ring without a kick fd is polled this often (vhost-user allows it).
    static let pollIntervalMs: CInt = 1

    let index: Int
    let name: String
    let handler: any QueueThreadHandler
    private let lock = Lock()
    private var context: QueueThreadContext
    private var published: Counters
    private let publisher: CounterPublisher
    private let epoll: OwnedFD
    private let wake: OwnedFD
    private var thread: WorkerThread?
    private var stopping = false

    init(index: Int, name: String, queues: [Int], handler: any QueueThreadHandler,
         publisher: CounterPublisher, deviceCounters: Int) throws {
        self.index = index
        self.name = name
        self.handler = handler
        self.publisher = publisher
        let ep = volt_epoll_create()
        guard ep >= 0 else { throw WorkerError.system("epoll_create1", errno: -ep) }
        epoll = OwnedFD(taking: ep)
        do { wake = try EventFD.make() } catch { throw WorkerError.system("eventfd", errno: Self.errno(of: error)) }
        let counters = Counters(deviceCount: deviceCounters)
        context = QueueThreadContext(rings: queues.map { Ring(index: $0) }, counters: counters, epoll: ep)
        published = counters
        let r = volt_epoll_add(ep, wake.rawValue, VOLT_EPOLLIN, EpollTag.wake.rawValue)
        guard r >= 0 else { throw WorkerError.system("epoll_ctl(ADD)", errno: -r) }
        do { try handler.prepare(&context) } catch { throw WorkerError.device("\(name): \(error)") }
    }

    private static func errno(of error: VhostUserError) -> Int32 {
        if case let .system(_, e) = error { return e }
        return EINVAL
    }

    /// Runs `body` on the context with the lock held, publishes any counts it made,
    /// then wakes the thread so it re-evaluates its rings.
    func withContext<R>(_ body: (inout QueueThreadContext, any QueueThreadHandler) throws -> R) rethrows -> R {
        let r = try lock.withLock { () throws -> R in
            let r = try body(&context, handler)
            publisher.publish(context.counters, since: &published)
            return r
        }
        EventFD.signal(wake.rawValue)
        return r
    }

    /// Starts the thread if it is not running yet.
    func start() throws(WorkerError) {
        let started = lock.withLock { thread != nil || stopping }
        guard !started else { return }
        let t = try WorkerThread.start(name: name) { [self] in run() }
        lock.withLock { thread = t }
    }

    /// Ends the thread and waits for it (tests, reset; a worker process just exits).
    func shutdown() {
        let t: WorkerThread? = lock.withLock { stopping = true; return thread }
        EventFD.signal(wake.rawValue)
        t?.join()
        lock.withLock { thread = nil; stopping = false }
    }

    private func run() {
        var tags = [UInt64](repeating: 0, count: 16)
        var events = [UInt32](repeating: 0, count: 16)
        var more = true      // rings may have work waiting at start
        var pollRings = false
        var wakeAfter: Int32?
        while true {
            var n: CInt = 0
            if !more {
                var timeout: CInt = pollRings ? Self.pollIntervalMs : -1
                if let wake = wakeAfter { timeout = timeout < 0 ? max(wake, 0) : min(timeout, max(wake, 0)) }
                n = volt_epoll_wait(epoll.rawValue, &tags, &events, 16, timeout)
                if n < 0 && n != -EINTR {
                    WorkerLog.line("\(name): epoll_wait failed: \(errnoText(-n)); thread stopped")
                    return
                }
            }
            let exit: Bool = lock.withLock {
                if stopping { return true }
                for i in 0..<Int(max(n, 0)) { dispatch(tags[i], events[i]) }
                if pollRings && n == 0 { markKicklessRings() }
                context.wakeAfterMilliseconds = nil
                do {
                    more = try handler.handle(&context)
                } catch {
                    more = false
                    context.failActiveRings(error)
                }
                wakeAfter = context.wakeAfterMilliseconds
                context.kicked = 0
                context.deviceEvents.removeAll(keepingCapacity: true)
                pollRings = context.rings.contains { $0.enabled && $0.kick == nil && $0.broken == nil }
                publisher.publish(context.counters, since: &published)
                return false
            }
            if exit { return }
        }
    }

    private func dispatch(_ raw: UInt64, _ events: UInt32) {
        switch EpollTag(rawValue: raw) {
        case .wake?:
            EventFD.drain(wake.rawValue)
        case let .kick(slot)? where slot < context.rings.count:
            guard let fd = context.rings[slot].kick else { return }
            if EventFD.drain(fd.rawValue) { context.counters.kicks &+= 1 }
            if events & (VOLT_EPOLLERR | VOLT_EPOLLHUP) != 0 {
                // Not a kick eventfd after all: stop watching it rather than spin.
                WorkerLog.line("\(name): queue \(context.rings[slot].index): kick fd failed; it is no longer watched")
                _ = volt_epoll_del(epoll.rawValue, fd.rawValue)
            }
            context.kicked |= 1 << UInt64(slot)
        case let .device(tag)?:
            context.deviceEvents.append((tag, events))
        default:
            break
        }
    }

    private func markKicklessRings() {
        for (slot, ring) in context.rings.enumerated() where ring.enabled && ring.kick == nil {
            context.kicked |= 1 << UInt64(slot)
        }
    }
}
