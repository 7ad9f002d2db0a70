import IPC
import Glibc

/// A back-end served in this process: `BackendRequestHandler` on `device`, on its own
/// thread, at the other end of a socketpair from a `VhostUserTestFrontend`. For tests
/// of a device or the worker framework without a worker process (or its sandbox).
public final class InProcessBackend: @unchecked Sendable {
    // @unchecked: `outcome` is written by the serving thread before it ends and read
    // only after `join`.
    public let frontend: VhostUserTestFrontend
    private var thread = pthread_t()
    private var joined = false
    private var outcome: Result<Void, VhostUserError> = .success(())

    private final class Box {
        let handler: BackendRequestHandler
        let backend: InProcessBackend
        init(_ handler: BackendRequestHandler, _ backend: InProcessBackend) { self.handler = handler; self.backend = backend }
    }

    public init(device: any VhostUserDevice, options: TestFrontendOptions = TestFrontendOptions()) throws(TestFrontendError) {
        let ours: Connection, theirs: Connection
        do { (ours, theirs) = try Connection.pair() } catch { throw .vhostUser(error) }
        frontend = try VhostUserTestFrontend(connection: ours, options: options)
        let box = Unmanaged.passRetained(Box(BackendRequestHandler(connection: theirs, device: device), self)).toOpaque()
        let r = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            do { try box.handler.run() } catch let error as VhostUserError { box.backend.outcome = .failure(error) } catch {}
            return nil
        }, box)
        guard r == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .system(operation: "pthread_create", errno: r)
        }
    }

    /// Hangs up and waits for the serving thread: how the session ended.
    @discardableResult
    public func close() -> Result<Void, VhostUserError> {
        if !joined {
            frontend.disconnect()
            pthread_join(thread, nil)
            joined = true
        }
        return outcome
    }

    deinit { close() }
}
