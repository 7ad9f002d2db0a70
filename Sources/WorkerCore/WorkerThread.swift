import CShim
import Glibc

/// A dedicated pthread running `body` (never the Swift concurrency pool: queue threads
/// block in poll, the signal thread in sigwait).
public struct WorkerThread {
    public let id: pthread_t

    private final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// Starts the thread; `name` (at most 15 bytes shown) appears in /proc.
    public static func start(name: String, _ body: @escaping () -> Void) throws(WorkerError) -> WorkerThread {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { arg in
            guard let arg else { return nil }
            let box = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
            // The thread names itself: prctl(PR_SET_NAME). Naming another thread goes
            // through /proc/self/task/TID/comm, which the sandbox has no path to.
            _ = volt_thread_setname(volt_thread_self(), box.name)
            box.body()
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .system("pthread_create", errno: r)
        }
        return WorkerThread(id: tid)
    }

    public func join() { pthread_join(id, nil) }
}
