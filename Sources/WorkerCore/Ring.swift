import IPC
import VirtioCore

/// One virtqueue as the framework keeps it: what the front-end set up, the fds it gave,
/// and the device-side `Virtqueue` over the current memory map. Lives in its queue
/// thread's context, guarded by that thread's lock; the device's handler reads and
/// advances `queue`, the framework does everything else.
public struct Ring {
    /// The queue's index in the device (vhost-user's vring index).
    public let index: Int
    /// SET_VRING_NUM / _ADDR / _BASE, kept until GET_VRING_BASE: a new memory table
    /// rebuilds the queue from it.
    public internal(set) var setup: QueueSetup?
    /// The queue over the current memory map; nil until configured, and while its
    /// addresses do not fit guest memory ("unusable": reported, never processed).
    public var queue: Virtqueue?
    /// Started (kicked and enabled) and not disabled since.
    public internal(set) var enabled = false
    /// Why the ring stopped: the driver broke it (e.g. avail.idx jumped), or the
    /// device's handler failed. Nothing is processed until the front-end stops
    /// (GET_VRING_BASE) and restarts it.
    public internal(set) var broken: (any Error)?
    public internal(set) var kick: OwnedFD?
    /// Where used-buffer notifications go (nil: the front-end polls).
    public internal(set) var call: OwnedFD?
    /// Signalled when the ring is found broken or unusable (VHOST_USER_SET_VRING_ERR).
    public internal(set) var err: OwnedFD?
    /// Inflight tracking (INFLIGHT_SHMFD), when the front-end set up a buffer.
    public var inflight: InflightQueue?
    /// Heads a previous worker took but never completed, in fetch order: a device
    /// serves these before any new available entry.
    public var resubmit: [UInt16] = []

    public init(index: Int) { self.index = index }

    /// The device may process this ring now.
    @inlinable
    public var isActive: Bool { enabled && broken == nil && queue != nil }

    /// The call fd's number (nil: no notifications).
    @inlinable
    public var callFD: CInt? { call?.rawValue }

    /// Stops the ring: the driver broke it. Signals the err fd, logs once, counts it.
    public mutating func fail(_ error: any Error, counters: inout Counters) {
        guard broken == nil else { return }
        broken = error
        counters.brokenRings &+= 1
        if let err { EventFD.signal(err.rawValue) }
        WorkerLog.line("queue \(index) stopped: \(error)")
    }
}

extension Virtqueue {
    /// Publishes the used entries staged so far and, if the driver asked for it
    /// (flags / EVENT_IDX), signals `call`. Counts the interrupt.
    @inlinable
    public mutating func publish(notifying call: CInt?, counters: inout Counters) {
        publishUsed()
        if needsNotification(), let call {
            EventFD.signal(call)
            counters.interrupts &+= 1
        }
    }
}
