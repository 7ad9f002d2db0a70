import CShim
import Glibc

/// A joinable OS thread running a closure. vCPUs block in KVM_RUN and must never run
/// on Swift's cooperative pool, so they get dedicated pthreads.
final class OSThread: @unchecked Sendable {
    private(set) var handle = pthread_t()

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    init(name: String, _ body: @escaping () -> Void) throws {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let r = pthread_create(&handle, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw RunError.system("cannot start thread \(name): error \(r)")
        }
        _ = volt_thread_setname(UInt(handle), name)
    }

    func join() {
        pthread_join(handle, nil)
    }
}
