import CShim
import Glibc
import Synchronization

/// A joinable OS thread running a closure. vCPUs block in KVM_RUN and must never run
/// on Swift's cooperative pool, so they get dedicated pthreads.
final class OSThread: @unchecked Sendable {
    private(set) var handle = pthread_t()

    private final class Box {
        let name: String
        let prepare: () -> Bool
        let body: () -> Void
        let ready = Atomic<Bool>(false)
        init(_ name: String, _ prepare: @escaping () -> Bool, _ body: @escaping () -> Void) {
            self.name = name; self.prepare = prepare; self.body = body
        }
    }

    /// Returns once the thread runs, carries its name (tools and tests find it by name) and
    /// has run `prepare` (its seccomp filter: no guest code runs while a thread is still
    /// unfiltered). `body` runs only if `prepare` returned true.
    init(name: String, prepare: @escaping () -> Bool = { true }, _ body: @escaping () -> Void) throws {
        let object = Box(name, prepare, body)
        let box = Unmanaged.passRetained(object).toOpaque()
        let r = pthread_create(&handle, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            // Named from inside (prctl), not by the creator: pthread_setname_np on another
            // thread writes /proc/self/task/N/comm, which Landlock denies after setup.
            _ = volt_thread_setname(volt_thread_self(), box.name)
            let prepared = box.prepare()
            box.ready.store(true, ordering: .releasing)
            if prepared { box.body() }
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw MachineError.threadStartFailed(name: name, code: r)
        }
        while !object.ready.load(ordering: .acquiring) { sched_yield() }
    }

    func join() {
        pthread_join(handle, nil)
    }
}

/// A pthread mutex with one condition variable: `withLock` runs a critical section,
/// `wait` (inside one) sleeps until a `broadcast`.
final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Only inside `withLock`.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Only inside `withLock`; false on timeout.
    func wait(milliseconds: Int) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let ns = Int(now.tv_nsec) + (milliseconds % 1000) * 1_000_000
        var deadline = timespec(tv_sec: now.tv_sec + milliseconds / 1000 + ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000)
        return pthread_cond_timedwait(condition, mutex, &deadline) == 0
    }

    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Holds threads until `open()`: the vCPUs wait on it until the main thread has loaded its
/// own seccomp filter, so no guest instruction runs while any volt-vmm thread is unfiltered.
final class StartGate: @unchecked Sendable {
    private let condition = Condition()
    private var isOpen = false

    func open() {
        condition.withLock {
            isOpen = true
            condition.broadcast()
        }
    }

    func wait() {
        condition.withLock { while !isOpen { condition.wait() } }
    }
}
