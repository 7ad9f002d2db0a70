import Glibc

/// The fds a queue thread waits on with poll(2) — its wake eventfd, its rings' kick
/// eventfds, device fds — each with the events it wants and a tag saying what it is.
/// poll, not epoll: a thread waits on a handful of fds, a change of interest is a store
/// instead of an epoll_ctl call, and the measured wake-up of a 4 KiB request was
/// slower through epoll. The thread polls on a copy it refreshes (under its lock) when
/// `generation` moves, so the set can change while it is blocked.
struct WaitSet {
    private(set) var fds: [pollfd] = []
    private(set) var tags: [WaitTag] = []
    private(set) var generation: UInt64 = 0

    mutating func add(_ fd: CInt, events: UInt32, tag: WaitTag) {
        fds.append(pollfd(fd: fd, events: Int16(truncatingIfNeeded: events), revents: 0))
        tags.append(tag)
        generation &+= 1
    }

    /// False if `fd` is not in the set.
    @discardableResult
    mutating func setEvents(_ fd: CInt, _ events: UInt32) -> Bool {
        guard let i = fds.firstIndex(where: { $0.fd == fd }) else { return false }
        let wanted = Int16(truncatingIfNeeded: events)
        if fds[i].events != wanted {
            fds[i].events = wanted
            generation &+= 1
        }
        return true
    }

    mutating func remove(_ fd: CInt) {
        guard let i = fds.firstIndex(where: { $0.fd == fd }) else { return }
        fds.remove(at: i)
        tags.remove(at: i)
        generation &+= 1
    }
}

/// What a waited-on fd is: the thread's wake eventfd, a ring's kick, or a device fd.
enum WaitTag: Equatable {
    case wake
    case kick(slot: Int)
    case device(UInt32)
}
