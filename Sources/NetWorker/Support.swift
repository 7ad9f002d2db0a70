import CShim
import Glibc
import IPC

/// A pthread mutex (no Foundation in the worker).
final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A dedicated pthread running `body` (never the Swift concurrency pool: it blocks in epoll).
struct WorkerThread {
    let id: pthread_t

    private final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    static func start(name: String, _ body: @escaping () -> Void) throws(NetWorkerError) -> WorkerThread {
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

    func join() { pthread_join(id, nil) }
}

/// Non-blocking close-on-exec eventfd.
func makeEventFD() throws(NetWorkerError) -> OwnedFD {
    let fd = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
    guard fd >= 0 else { throw .system("eventfd", errno: -fd) }
    return OwnedFD(taking: fd)
}

/// Adds 1 to an eventfd (kick or interrupt). EAGAIN (counter saturated) is harmless.
@discardableResult
func signalEventFD(_ fd: CInt) -> Bool {
    var one: UInt64 = 1
    while true {
        let r = write(fd, &one, 8)
        if r == 8 { return true }
        if r < 0 && errno == EINTR { continue }
        return false
    }
}

/// Empties a non-blocking eventfd; true if it had been signalled.
@discardableResult
func drainEventFD(_ fd: CInt) -> Bool {
    var value: UInt64 = 0
    while true {
        let r = read(fd, &value, 8)
        if r == 8 { return true }
        if r < 0 && errno == EINTR { continue }
        return false
    }
}

/// Writes one line to stderr (unbuffered).
func logLine(_ text: String) {
    let line = "volt-net-worker: " + text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
