import CShim
import Glibc
import VirtioCore

/// One thread per started queue. It blocks in poll(2) on the queue's kick eventfd and
/// a private stop eventfd: no busy loop. Each kick drains the ring in batches
/// (QueueHandler). The vhost-user handler stays on the main thread.
///
/// Exact stop: `stop()` signals the stop eventfd and joins the thread. The thread only
/// looks at the stop eventfd between batches, and a batch completes (and publishes)
/// every chain it popped, so after the join no chain is in flight and the handler's
/// `queue.nextAvail` is exactly the next available index to process — what
/// GET_VRING_BASE must return.
final class QueueWorker {
    /// Shared with the thread; only the thread touches `handler` until the join.
    private final class Context {
        var handler: QueueHandler
        let kickFD: CInt?
        let stopFD: CInt
        let name: String
        init(handler: QueueHandler, kickFD: CInt?, stopFD: CInt, name: String) {
            self.handler = handler; self.kickFD = kickFD; self.stopFD = stopFD; self.name = name
        }
    }

    /// Without a kick fd (vhost-user: "poll the ring"), the thread checks the ring this often.
    static let pollIntervalMs: CInt = 1

    private let context: Context
    private var thread: pthread_t
    private var joined = false

    enum StartError: Error, CustomStringConvertible {
        case eventfd(CInt), thread(CInt)
        var description: String {
            switch self {
            case let .eventfd(e): return "eventfd failed: errno \(e)"
            case let .thread(e): return "pthread_create failed: errno \(e)"
            }
        }
    }

    /// Starts the thread. `kickFD` must stay open until `stop()` returns.
    init(handler: QueueHandler, kickFD: CInt?, name: String) throws(StartError) {
        let stopFD = volt_eventfd(0, VOLT_EFD_CLOEXEC)
        guard stopFD >= 0 else { throw .eventfd(-stopFD) }
        context = Context(handler: handler, kickFD: kickFD, stopFD: stopFD, name: name)
        let retained = Unmanaged.passRetained(context).toOpaque()
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { raw in
            let context = Unmanaged<QueueWorker.Context>.fromOpaque(raw!).takeRetainedValue()
            QueueWorker.run(context)
            return nil
        }, retained)
        guard r == 0 else {
            Unmanaged<Context>.fromOpaque(retained).release()
            close(stopFD)
            throw .thread(r)
        }
        thread = tid
    }

    /// Stops and joins the thread; returns the handler with the exact ring position.
    func stop() -> QueueHandler {
        if !joined {
            signalEventfd(context.stopFD)
            pthread_join(thread, nil)
            joined = true
            close(context.stopFD)
        }
        return context.handler
    }

    deinit { _ = stop() }

    private static func run(_ c: Context) {
        _ = volt_thread_setname(volt_thread_self(), c.name)
        // Rings start on kick + enable; buffers may already be waiting (or a kick was
        // consumed before a restart), so look once before sleeping.
        c.handler.drain()
        var fds = [pollfd(fd: c.stopFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: c.kickFD ?? -1, events: Int16(POLLIN), revents: 0)]
        let timeout: CInt = c.kickFD == nil ? pollIntervalMs : -1
        while true {
            if c.handler.broken != nil { fds[1].fd = -1 }   // ignore kicks; wait for stop
            let r = poll(&fds, 2, c.handler.broken != nil ? -1 : timeout)
            if r < 0 {
                if errno == EINTR { continue }
                warn("\(c.name): poll failed: errno \(errno); queue stopped")
                fds[1].fd = -1
                continue
            }
            if fds[0].revents != 0 { return }
            if let kick = c.kickFD, fds[1].revents & Int16(POLLIN) != 0 {
                var counter: UInt64 = 0
                // Reset the eventfd counter (one read takes all kicks so far).
                while read(kick, &counter, 8) < 0 && errno == EINTR {}
                c.handler.state.metrics.kicks.add()
                c.handler.drain()
            } else if fds[1].revents & Int16(POLLERR | POLLNVAL) != 0 {
                warn("\(c.name): kick fd failed; queue stopped")
                fds[1].fd = -1
                fds[1].revents = 0
            } else if c.kickFD == nil {
                c.handler.drain()
            }
        }
    }
}
