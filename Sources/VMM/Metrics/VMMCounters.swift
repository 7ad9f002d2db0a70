import Synchronization

/// The VMM's own counters: vCPU exits by reason and the guest's boot time.
final class VMMCounters: Sendable {
    let exitsIO = Atomic<UInt64>(0)
    let exitsMMIO = Atomic<UInt64>(0)
    let exitsOther = Atomic<UInt64>(0)
    /// Milliseconds from start to the guest's first boot-timer write, times 1000 (0: not yet).
    let bootMicroseconds = Atomic<UInt64>(0)

    var snapshot: [(name: String, value: UInt64)] {
        [("exits_io", exitsIO.load(ordering: .relaxed)),
         ("exits_mmio", exitsMMIO.load(ordering: .relaxed)),
         ("exits_other", exitsOther.load(ordering: .relaxed)),
         ("boot_time_us", bootMicroseconds.load(ordering: .relaxed))]
    }
}
