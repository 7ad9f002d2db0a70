import Glibc
import IPC
import VirtioCore

/// What a queue thread's handler works on, guarded by the thread's lock: its rings,
/// its counters, what woke it, and the fds it waits on (device fds such as a TAP).
public struct QueueThreadContext {
    /// This thread's rings, in the order `BackendDevice.threadLayout` lists them.
    public var rings: [Ring]
    public var counters: Counters
    /// Bit i: `rings[i]` was kicked, started or is due for polling since the last
    /// `handle` call. Cleared after each call.
    public internal(set) var kicked: UInt64 = 0
    /// Device fds (registered with `watch`) that reported events since the last call:
    /// their tag and poll(2) event bits (POLLIN, POLLOUT, POLLERR, POLLHUP). Cleared
    /// after each call.
    public internal(set) var deviceEvents: [(tag: UInt32, events: UInt32)] = []
    /// Set by the handler: call `handle` again within this many milliseconds even if
    /// nothing wakes the thread (a rate limiter waiting for tokens). Cleared before
    /// each call.
    public var wakeAfterMilliseconds: Int32?
    var waitSet = WaitSet()

    init(rings: [Ring], counters: Counters, wake: CInt) {
        self.rings = rings
        self.counters = counters
        waitSet.add(wake, events: UInt32(POLLIN), tag: .wake)
        deviceEvents.reserveCapacity(16)
    }

    @inlinable
    public func wasKicked(_ slot: Int) -> Bool { kicked & (1 << UInt64(slot)) != 0 }

    /// Adds a device fd to the fds the thread waits on, for `events` (POLLIN / POLLOUT;
    /// 0 = none for now: errors and hang-ups are reported anyway); it wakes the thread
    /// with `tag` in `deviceEvents`.
    public mutating func watch(_ fd: CInt, tag: UInt32, events: UInt32) {
        waitSet.add(fd, events: events, tag: .device(tag))
    }

    /// Changes which events a watched fd reports. False if it is not watched.
    @discardableResult
    public mutating func setInterest(_ fd: CInt, events: UInt32) -> Bool {
        waitSet.setEvents(fd, events)
    }

    public mutating func unwatch(_ fd: CInt) { waitSet.remove(fd) }

    /// One turn of a queue thread's loop (its lock held): takes what poll reported on
    /// `fds` (the thread's copy of the wait set, `tags` beside it), calls the handler,
    /// and says whether to come back at once, whether a ring wants polling, and when
    /// the handler wants to be woken.
    mutating func turn(_ handler: any QueueThreadHandler, fds: inout [pollfd], tags: [WaitTag],
                       pollTimedOut: Bool, thread: String) -> (more: Bool, pollRings: Bool, wakeAfter: Int32?) {
        for i in fds.indices where fds[i].revents != 0 {
            dispatch(tags[i], fd: fds[i].fd, events: UInt32(UInt16(bitPattern: fds[i].revents)), thread: thread)
            fds[i].revents = 0
        }
        if pollTimedOut {
            for (slot, ring) in rings.enumerated() where ring.enabled && ring.kick == nil { kicked |= 1 << UInt64(slot) }
        }
        wakeAfterMilliseconds = nil
        var more = false
        do {
            more = try handler.handle(&self)
        } catch {
            failActiveRings(error)
        }
        kicked = 0
        if !deviceEvents.isEmpty { deviceEvents.removeAll(keepingCapacity: true) }
        var pollRings = false
        for ring in rings where ring.enabled && ring.kick == nil && ring.broken == nil { pollRings = true }
        return (more, pollRings, wakeAfterMilliseconds)
    }

    private mutating func dispatch(_ tag: WaitTag, fd: CInt, events: UInt32, thread: String) {
        switch tag {
        case .wake:
            EventFD.drain(fd)
        case let .kick(slot) where slot < rings.count:
            guard let kick = rings[slot].kick?.rawValue else { return }
            if EventFD.drain(kick) { counters.kicks &+= 1 }
            if events & UInt32(POLLERR | POLLHUP | POLLNVAL) != 0, kick == fd {
                // Not a kick eventfd after all: stop watching it rather than spin.
                WorkerLog.line("\(thread): queue \(rings[slot].index): kick fd failed; it is no longer watched")
                waitSet.remove(kick)
            }
            kicked |= 1 << UInt64(slot)
        case let .device(tag):
            deviceEvents.append((tag, events))
        default:
            break
        }
    }

    /// The handler threw: every ring still active stops with that error.
    private mutating func failActiveRings(_ error: any Error) {
        for slot in rings.indices where rings[slot].isActive {
            rings[slot].fail(error, counters: &counters)
        }
    }
}
