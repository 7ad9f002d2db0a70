/// The thread that writes snapshots: it exists from the VM's start, under its own
/// seccomp filter (create files, write them, read KVM state, stop and start rings), and
/// sleeps until a snapshot is asked for. The API thread, which anyone with the socket
/// reaches, never gets those calls.
final class SnapshotThread: @unchecked Sendable {
    // @unchecked: `job`, `result` and `ending` are only touched under `condition`.
    private let condition = Condition()
    private var job: (() -> Void)?
    private var ending = false
    private var thread: OSThread?

    init(prepare: @escaping () -> Bool) throws {
        thread = try OSThread(name: "volt-snapshot", prepare: prepare) { [self] in serve() }
    }

    /// Runs `body` on the snapshot thread and waits for it; one at a time.
    func run<T>(_ body: @escaping () throws(SnapshotError) -> T) throws(SnapshotError) -> T {
        nonisolated(unsafe) var result: Result<T, SnapshotError>?
        let done = Condition()
        try condition.withLock { () throws(SnapshotError) in
            guard !ending else { throw .failed("the VM is stopping") }
            while job != nil { condition.wait() }
            job = {
                let r = Result { () throws(SnapshotError) -> T in try body() }
                done.withLock {
                    result = r
                    done.broadcast()
                }
            }
            condition.broadcast()
        }
        return try done.withLock { () throws(SnapshotError) -> T in
            while result == nil { done.wait() }
            return try result!.get()
        }
    }

    /// The VM is stopping: the thread leaves once a running snapshot is done.
    func end() {
        condition.withLock {
            ending = true
            condition.broadcast()
        }
        thread?.join()
    }

    private func serve() {
        while true {
            let next = condition.withLock { () -> (() -> Void)? in
                while job == nil && !ending { condition.wait() }
                return job
            }
            guard let next else { return }
            next()
            condition.withLock {
                job = nil
                condition.broadcast()
            }
        }
    }
}
