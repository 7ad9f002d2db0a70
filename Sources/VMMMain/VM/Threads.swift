import CShim
import Glibc
import Synchronization

/// A joinable OS thread running a closure. vCPUs block in KVM_RUN and must never run
/// on Swift's cooperative pool, so they get dedicated pthreads.
final class OSThread: @unchecked Sendable {
    private(set) var handle = pthread_t()

    private final class Box {
        let name: String
        let body: () -> Void
        let named = Atomic<Bool>(false)
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// Returns once the thread runs and carries its name (tools and tests find it by name).
    init(name: String, _ body: @escaping () -> Void) throws {
        let object = Box(name, body)
        let box = Unmanaged.passRetained(object).toOpaque()
        let r = pthread_create(&handle, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            // Named from inside (prctl), not by the creator: pthread_setname_np on another
            // thread writes /proc/self/task/N/comm, which Landlock denies after setup.
            _ = volt_thread_setname(volt_thread_self(), box.name)
            box.named.store(true, ordering: .releasing)
            box.body()
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw RunError.system("cannot start thread \(name): error \(r)")
        }
        while !object.named.load(ordering: .acquiring) { sched_yield() }
    }

    func join() {
        pthread_join(handle, nil)
    }
}
