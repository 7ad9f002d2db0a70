import CShim
import Glibc
import IPC

/// A non-blocking eventfd the frontend owns (a queue's kick or call).
public final class EventFD {
    public let fd: OwnedFD

    public init() throws(TestFrontendError) {
        let raw = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        guard raw >= 0 else { throw .system(operation: "eventfd", errno: -raw) }
        fd = OwnedFD(taking: raw)
    }

    /// Adds 1 to the counter (a kick).
    public func signal() throws(TestFrontendError) {
        var one: UInt64 = 1
        while Glibc.write(fd.rawValue, &one, 8) < 0 {
            let e = errno
            if e == EINTR { continue }
            throw .system(operation: "eventfd write", errno: e)
        }
    }

    /// Reads and clears the counter; 0 if nothing was signalled.
    @discardableResult
    public func drain() throws(TestFrontendError) -> UInt64 {
        var value: UInt64 = 0
        while Glibc.read(fd.rawValue, &value, 8) < 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN { return 0 }
            throw .system(operation: "eventfd read", errno: e)
        }
        return value
    }

    /// Waits up to `milliseconds` for a signal; true if one is pending. Does not clear it.
    public func wait(milliseconds: Int) throws(TestFrontendError) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        let deadline = volt_monotonic_ns() &+ UInt64(max(milliseconds, 0)) &* 1_000_000
        while true {
            let now = volt_monotonic_ns()
            let left = now >= deadline ? 0 : Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            let r = poll(&entry, 1, left)
            if r > 0 { return true }
            if r == 0 { return false }
            let e = errno
            if e != EINTR { throw .system(operation: "poll", errno: e) }
        }
    }
}
