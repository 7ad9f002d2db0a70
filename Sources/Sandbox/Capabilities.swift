import CCap
import Glibc

enum Capabilities {
    /// Empties the ambient, bounding, inheritable, permitted and effective sets, in the
    /// order that needs them: the bounding set can only shrink while CAP_SETPCAP is
    /// still effective.
    static func dropAll() throws(SandboxError) {
        if cap_reset_ambient() != 0 { throw .capabilities("cap_reset_ambient", errno: errno) }
        let last = cap_max_bits()
        for cap in 0..<cap_value_t(last) where cap_get_bound(cap) == 1 {
            if cap_drop_bound(cap) != 0 { throw .capabilities("cap_drop_bound(\(cap))", errno: errno) }
        }
        guard let empty = cap_init() else { throw .capabilities("cap_init", errno: errno) }
        defer { cap_free(UnsafeMutableRawPointer(empty)) }
        if cap_set_proc(empty) != 0 { throw .capabilities("cap_set_proc(empty)", errno: errno) }
    }
}
