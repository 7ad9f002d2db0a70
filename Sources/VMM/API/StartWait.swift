import CShim
import Glibc
import IPC

extension VMController {
    /// `waitForStart` with the termination signals (blocked by the caller) taken meanwhile
    /// by a thread of its own: until the machine runs there is no signal thread, and a
    /// SIGTERM must still end volt-vmm cleanly, its API socket removed. When this returns
    /// that thread is gone, and a later signal stays pending for the machine's.
    public func waitForStartOrSignal() throws -> Next {
        let handover = try EventFD.make()
        let waiter = try OSThread(name: "volt-api-signal") { [self] in
            let sig = volt_wait_termination_signal_or_fd(handover.rawValue)
            if sig > 0 { terminate(signal: sig) }
        }
        let next = waitForStart()
        EventFD.signal(handover.rawValue)
        waiter.join()
        // A signal taken just as InstanceStart came still ends volt-vmm.
        if case .start = next, let signal = terminationSignal { return .terminate(signal: signal) }
        return next
    }
}
