import VirtioCore

/// The part of a device that runs on one queue thread: it moves the data of that
/// thread's rings. Every call comes on the queue thread or on the vhost-user thread,
/// always with the thread's lock held, so a handler never sees a ring change under a
/// running batch, and GET_VRING_BASE never sees one in flight.
public protocol QueueThreadHandler: AnyObject {
    /// Serves the thread's rings after a wake-up: `context.kicked` has a bit per ring
    /// kicked (or started, or due for polling) since the last call, and
    /// `context.deviceEvents` the device fds that reported events. Process only rings
    /// that are `isActive`. Return true if work is left (a budget was spent): the loop
    /// calls again without waiting. A thrown error stops every ring of the thread that
    /// is still active (as if the driver had broken them: err fds signalled, logged,
    /// counted); the worker goes on serving its other threads, and a ring the front-end
    /// restarts is served again.
    func handle(_ context: inout QueueThreadContext) throws -> Bool

    /// `slot`'s ring is about to be stopped (GET_VRING_BASE) or reset: give back what
    /// the handler holds of it (e.g. cached chains: move `queue.nextAvail` back), so
    /// the reported base is exact.
    func ringStopping(_ slot: Int, _ context: inout QueueThreadContext)

    /// SET_FEATURES: the acked virtio features (without the vhost-user bit).
    func featuresAcked(_ features: UInt64)

    /// Once, when the thread's context is made (before the sandbox): e.g. `watch` a
    /// device fd.
    func prepare(_ context: inout QueueThreadContext) throws
}

extension QueueThreadHandler {
    public func prepare(_ context: inout QueueThreadContext) throws {}
    public func ringStopping(_ slot: Int, _ context: inout QueueThreadContext) {}
    public func featuresAcked(_ features: UInt64) {}
}
