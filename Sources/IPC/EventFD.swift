import CShim
import Glibc

/// The eventfd operations every side of vhost-user needs: kick, call, err and wake-up
/// fds are all eventfds (a counter; a write adds, a read takes the total and clears it).
public enum EventFD {
    /// A new close-on-exec eventfd, non-blocking unless `blocking`.
    public static func make(blocking: Bool = false) throws(VhostUserError) -> OwnedFD {
        let flags = VOLT_EFD_CLOEXEC | (blocking ? 0 : VOLT_EFD_NONBLOCK)
        let fd = volt_eventfd(0, flags)
        guard fd >= 0 else { throw .system(operation: "eventfd", errno: -fd) }
        return OwnedFD(taking: fd)
    }

    /// Adds 1 (a kick, an interrupt, a wake-up). False if the write failed (EAGAIN: the
    /// counter is saturated, which already means "signalled").
    @discardableResult
    public static func signal(_ fd: CInt) -> Bool {
        var one: UInt64 = 1
        while true {
            let r = write(fd, &one, 8)
            if r == 8 { return true }
            if r < 0 && errno == EINTR { continue }
            return false
        }
    }

    /// Takes and clears the counter of a non-blocking eventfd; true if it was signalled.
    @discardableResult
    public static func drain(_ fd: CInt) -> Bool {
        var value: UInt64 = 0
        while true {
            let r = read(fd, &value, 8)
            if r == 8 { return true }
            if r < 0 && errno == EINTR { continue }
            return false
        }
    }
}
