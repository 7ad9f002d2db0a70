import CShim
import Glibc

/// A joinable OS thread running a closure. vCPUs block in KVM_RUN and must never run
/// on Swift's cooperative pool, so they get dedicated pthreads.
final class OSThread: @unchecked Sendable {
    private(set) var handle = pthread_t()

    private final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    init(name: String, _ body: @escaping () -> Void) throws {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        let r = pthread_create(&handle, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            // Named from inside (prctl), not by the creator: pthread_setname_np on another
            // thread writes /proc/self/task/N/comm, which Landlock denies after setup.
            _ = volt_thread_setname(volt_thread_self(), box.name)
            box.body()
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw RunError.system("cannot start thread \(name): error \(r)")
        }
    }

    func join() {
        pthread_join(handle, nil)
    }
}
