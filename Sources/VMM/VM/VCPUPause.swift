import CShim
import Glibc
import Logging
import Synchronization

/// Stops every vCPU thread between two KVM_RUN calls and starts them again, for
/// `PATCH /vm` (and snapshots). A vCPU leaving its park takes the time the VM spent
/// paused out of its TSC (KVM_VCPU_TSC_OFFSET), so a guest timing itself with the TSC
/// sees no time pass; every vCPU takes out the same amount, so their TSCs stay in step.
/// kvmclock is held by `MachineControl`.
final class VCPUPause: @unchecked Sendable {
    // @unchecked: every var is only touched under `condition`.
    static let tscMSR: UInt32 = 0x10
    /// Shorter holds are not checked: the reads around the change take microseconds.
    static let checkedHoldCycles: UInt64 = 50_000_000
    private let condition = Condition()
    private let count: Int
    private let logger: Logger
    private var requested = false
    private var parked = 0
    /// The machine is ending: nobody parks any more, everyone parked leaves.
    private var ending = false
    /// Host TSC when the last vCPU parked; nil until every vCPU has.
    private var allParkedAt: UInt64?
    /// Host TSC cycles spent with every vCPU parked, over all pauses, and how much of it
    /// each vCPU has taken out of its TSC (a vCPU slow to wake may miss a resume).
    private var totalHeld: UInt64 = 0
    private var applied: [UInt64]
    private let warned = Atomic<Bool>(false)

    /// `paused`: every vCPU parks before its first instruction (a snapshot restored
    /// without resume_vm) until `resume`.
    init(vcpuCount: Int, logger: Logger, paused: Bool = false) {
        count = vcpuCount
        applied = Array(repeating: 0, count: vcpuCount)
        self.logger = logger
        requested = paused
    }

    /// Host TSC cycles since every vCPU parked (0 while not all are): what a snapshot
    /// takes out of the TSCs it saves, so a restored guest's TSC continues from the pause.
    func heldCycles() -> UInt64 {
        condition.withLock { allParkedAt.map { volt_rdtsc() &- $0 } ?? 0 }
    }

    /// Waits until every vCPU has parked (a VM started paused), at most `milliseconds`.
    func waitUntilParked(milliseconds: Int) -> Bool {
        condition.withLock {
            var waited = 0
            while parked < count && !ending {
                if !condition.wait(milliseconds: 10) {
                    waited += 10
                    if waited >= milliseconds { return false }
                }
            }
            return !ending
        }
    }

    /// Called by a vCPU thread each time KVM_RUN returns to it early (a kick): parks while
    /// a pause is requested.
    func checkpoint(_ vcpu: VCPU) {
        guard condition.withLock({ requested && !ending }) else { return }
        let hold = condition.withLock { () -> UInt64 in
            parked += 1
            if parked == count { allParkedAt = volt_rdtsc() }
            condition.broadcast()
            while requested && !ending { condition.wait() }
            parked -= 1
            condition.broadcast()
            let hold = totalHeld &- applied[vcpu.index]
            applied[vcpu.index] = totalHeld
            return ending ? 0 : hold
        }
        if hold > 0 { takeOutOfTSC(vcpu, cycles: hold) }
    }

    /// Asks every vCPU to park (the caller kicks them out of KVM_RUN), and waits until
    /// they all have, at most `milliseconds`. False on timeout (the request stands).
    func pause(kick: () -> Void, milliseconds: Int) -> Bool {
        condition.withLock { requested = true }
        kick()
        return condition.withLock {
            var waited = 0
            while parked < count && !ending {
                if !condition.wait(milliseconds: 10) {
                    waited += 10
                    if waited >= milliseconds { return false }
                    kick()   // a kick that landed between two KVM_RUN calls is lost
                }
            }
            return !ending
        }
    }

    /// Lets every parked vCPU go on.
    func resume() {
        condition.withLock {
            if let since = allParkedAt { totalHeld &+= volt_rdtsc() &- since }
            allParkedAt = nil
            requested = false
            condition.broadcast()
        }
    }

    /// The machine is stopping: parked vCPUs leave so they can be joined.
    func end() {
        condition.withLock {
            ending = true
            condition.broadcast()
        }
    }

    /// Moves the vCPU's TSC back by `cycles`, and checks (once per VM, on a long enough
    /// hold) that KVM applied it: some hosts (nested PVM) accept the offset and ignore it.
    private func takeOutOfTSC(_ vcpu: VCPU, cycles: UInt64) {
        do {
            let before = try vcpu.msrs([Self.tscMSR])[0]
            try vcpu.setTSCOffset(try vcpu.tscOffset() &- cycles)
            guard cycles >= Self.checkedHoldCycles else { return }
            let after = try vcpu.msrs([Self.tscMSR])[0]
            if Int64(bitPattern: before &- after) < Int64(cycles / 2) {
                warnOnce("KVM accepted the vCPU's TSC offset but the guest TSC did not move back (\(cycles) cycles expected); on this host a paused guest's TSC runs on, kvmclock is held")
            }
        } catch {
            warnOnce("cannot hold the guest TSC across the pause (\(error)); the guest's TSC ran on, kvmclock is held")
        }
    }

    private func warnOnce(_ message: @autoclosure () -> String) {
        guard !warned.exchange(true, ordering: .relaxed) else { return }
        logger.warning("vCPU pause: \(message())")
    }
}
