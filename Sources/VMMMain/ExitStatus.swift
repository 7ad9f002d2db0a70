import VMM

extension VMOutcome {
    /// `volt-vmm run`'s exit status for how the VM ended: 0 when the guest reset or shut
    /// down, 128+N when stopped by signal N, 1 for a failure.
    var exitCode: Int32 {
        switch self {
        case .guestReset, .guestShutdown: return 0
        case let .signal(sig): return 128 + sig
        case .failure: return 1
        }
    }
}
