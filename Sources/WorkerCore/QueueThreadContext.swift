import CShim
import IPC
import VirtioCore

/// What a queue thread's handler works on, guarded by the thread's lock: its rings,
/// its counters, what woke it, and its epoll set for device fds (e.g. a TAP).
public struct QueueThreadContext {
    /// This thread's rings, in the order `BackendDevice.threadLayout` lists them.
    public var rings: [Ring]
    public var counters: Counters
    /// Bit i: `rings[i]` was kicked, started or is due for polling since the last
    /// `handle` call. Cleared after each call.
    public internal(set) var kicked: UInt64 = 0
    /// Device fds (registered with `watch`) that reported events since the last call:
    /// their tag and epoll event bits. Cleared after each call.
    public internal(set) var deviceEvents: [(tag: UInt32, events: UInt32)] = []
    /// Set by the handler: call `handle` again within this many milliseconds even if
    /// nothing wakes the thread (a rate limiter waiting for tokens). Cleared before
    /// each call.
    public var wakeAfterMilliseconds: Int32?
    let epoll: CInt

    init(rings: [Ring], counters: Counters, epoll: CInt) {
        self.rings = rings
        self.counters = counters
        self.epoll = epoll
        deviceEvents.reserveCapacity(16)
    }

    @inlinable
    public func wasKicked(_ slot: Int) -> Bool { kicked & (1 << UInt64(slot)) != 0 }

    /// Adds a device fd to the thread's epoll set with `events` (VOLT_EPOLL*; 0 = none
    /// for now); it wakes the thread with `tag` in `deviceEvents`.
    public func watch(_ fd: CInt, tag: UInt32, events: UInt32) throws(WorkerError) {
        let r = volt_epoll_add(epoll, fd, events, EpollTag.device(tag).rawValue)
        guard r >= 0 else { throw .system("epoll_ctl(ADD)", errno: -r) }
    }

    /// Changes which events a watched fd reports. False if the kernel refused.
    @discardableResult
    public func setInterest(_ fd: CInt, tag: UInt32, events: UInt32) -> Bool {
        volt_epoll_mod(epoll, fd, events, EpollTag.device(tag).rawValue) >= 0
    }

    public func unwatch(_ fd: CInt) { _ = volt_epoll_del(epoll, fd) }

    /// The handler threw: every ring still active stops with that error.
    mutating func failActiveRings(_ error: any Error) {
        for slot in rings.indices where rings[slot].isActive {
            rings[slot].fail(error, counters: &counters)
        }
    }
}

/// The 64-bit epoll tag of a queue thread's fds: its wake eventfd, a ring's kick, or a
/// device fd.
enum EpollTag: Equatable {
    case wake
    case kick(slot: Int)
    case device(UInt32)

    var rawValue: UInt64 {
        switch self {
        case .wake: return 0
        case let .kick(slot): return 1 << 32 | UInt64(slot)
        case let .device(tag): return 2 << 32 | UInt64(tag)
        }
    }

    init?(rawValue: UInt64) {
        let low = UInt32(truncatingIfNeeded: rawValue)
        switch rawValue >> 32 {
        case 0: self = .wake
        case 1: self = .kick(slot: Int(low))
        case 2: self = .device(low)
        default: return nil
        }
    }
}
