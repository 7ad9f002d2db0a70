import Glibc
import IPC

/// One thread serving a group of rings: it blocks in poll(2) on its rings' kick
/// eventfds, a wake eventfd and any device fds, and calls the device's handler with its
/// lock held. The vhost-user thread changes ring state only through `withContext` (same
/// lock, then a wake-up), so every change lands between two handler calls.
///
/// The wake eventfd is made at construction, before the sandbox; the thread starts
/// after it (`DeviceBackend.start`), or with its first ring.
final class QueueThread: @unchecked Sendable {
    // @unchecked: `context`, `stopping` and `thread` are only touched with `lock` held
    // (or before the thread starts / after it is joined).

    /// A running ring without a kick fd is polled this often (vhost-user allows it).
    static let pollIntervalMs: CInt = 1
    /// Counts reach the metrics page every this many turns of a busy thread, and each
    /// time it goes idle (publishing every turn cost ~4 % of a 4 KiB request; a poll
    /// timeout to publish later cost more: arming a timer is slow in a nested VM).
    static let publishEveryTurns = 32

    let index: Int
    let name: String
    let handler: any QueueThreadHandler
    private let lock = Lock()
    /// The context, guarded by `lock`. Behind a pointer, not a stored property: the loop
    /// touches it every turn, and a class property would cost a dynamic exclusivity
    /// check per access.
    private let context: UnsafeMutablePointer<QueueThreadContext>
    /// The counts last published, for the deltas.
    private let published: Counters
    private let publisher: CounterPublisher
    private let wake: OwnedFD
    private var thread: WorkerThread?
    private var stopping = false

    init(index: Int, name: String, queues: [Int], handler: any QueueThreadHandler,
         publisher: CounterPublisher, deviceCounters: Int) throws {
        self.index = index
        self.name = name
        self.handler = handler
        self.publisher = publisher
        do { wake = try EventFD.make() } catch { throw WorkerError.system("eventfd", errno: Self.errno(of: error)) }
        context = .allocate(capacity: 1)
        context.initialize(to: QueueThreadContext(rings: queues.map { Ring(index: $0) },
                                                  counters: Counters(deviceCount: deviceCounters), wake: wake.rawValue))
        published = Counters(deviceCount: deviceCounters)
        do { try handler.prepare(&context.pointee) } catch { throw WorkerError.device("\(name): \(error)") }
    }

    deinit {
        context.deinitialize(count: 1)
        context.deallocate()
    }

    private static func errno(of error: VhostUserError) -> Int32 {
        if case let .system(_, e) = error { return e }
        return EINVAL
    }

    /// Runs `body` on the context with the lock held, publishes any counts it made,
    /// then wakes the thread so it re-evaluates its rings.
    func withContext<R>(_ body: (inout QueueThreadContext, any QueueThreadHandler) throws -> R) rethrows -> R {
        let r = try lock.withLock { () throws -> R in
            let r = try body(&context.pointee, handler)
            publisher.publish(context.pointee.counters, since: published)
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
        // The thread's copy of the wait set: poll runs on it outside the lock.
        var fds: [pollfd] = []
        var tags: [WaitTag] = []
        var generation = UInt64.max
        var more = true      // rings may have work waiting at start
        var pollRings = false
        var wakeAfter: Int32?
        var turnsUnpublished = 0
        while true {
            var n: CInt = 0
            if !more {
                var timeout: CInt = pollRings ? Self.pollIntervalMs : -1
                if let wake = wakeAfter { timeout = timeout < 0 ? max(wake, 0) : min(timeout, max(wake, 0)) }
                n = poll(&fds, nfds_t(fds.count), timeout)
                if n < 0 {
                    if Glibc.errno == EINTR { continue }
                    WorkerLog.line("\(name): poll failed: \(errnoText(Glibc.errno)); thread stopped")
                    return
                }
            }
            let exit: Bool = lock.withLock {
                if stopping { return true }
                let turn = context.pointee.turn(handler, fds: &fds, tags: tags, pollTimedOut: pollRings && n == 0, thread: name)
                (more, pollRings, wakeAfter) = (turn.more, turn.pollRings, turn.wakeAfter)
                turnsUnpublished += 1
                if turnsUnpublished >= Self.publishEveryTurns || !more {
                    publisher.publish(context.pointee.counters, since: published)
                    turnsUnpublished = 0
                }
                if context.pointee.waitSet.generation != generation {
                    (fds, tags, generation) = (context.pointee.waitSet.fds, context.pointee.waitSet.tags, context.pointee.waitSet.generation)
                }
                return false
            }
            if exit { return }
        }
    }
}
