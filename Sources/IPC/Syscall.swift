import Glibc

/// The one EINTR-retry helper: runs a CShim call (>= 0 or -errno) until it is not
/// interrupted, and turns a failure into `VhostUserError.system`.
@inline(__always)
func retryingOnInterrupt(_ operation: String, _ call: () -> CInt) throws(VhostUserError) -> CInt {
    while true {
        let r = call()
        if r >= 0 { return r }
        if r == -EINTR { continue }
        throw .system(operation: operation, errno: -r)
    }
}
