import Glibc
import SystemPackage

/// The one EINTR-retry helper: runs `call` until it is not interrupted. Returns the
/// result (>= 0) or throws the errno it failed with, naming `operation`.
@inline(__always)
func retryingOnInterrupt<T: BinaryInteger>(
    _ operation: @autoclosure () -> String, _ call: () -> T
) throws(APIServerError) -> T {
    while true {
        let r = call()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw .system(operation: operation(), errno: Errno(rawValue: e))
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call in practice).
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

extension Duration {
    /// Whole nanoseconds, saturating (negative durations count as zero).
    var saturatingNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (ns, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000)).partialValue
    }
}
