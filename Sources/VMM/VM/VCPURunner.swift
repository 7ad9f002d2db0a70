import Sandbox
import CShim
import Glibc
import Logging

/// The loop of one vCPU thread: KVM_RUN, dispatch the exit, repeat until the VM stops.
struct VCPURunner {
    let vcpu: VCPU
    let ioBus: PortIOBus
    let mmioBus: MMIOBus
    let lifecycle: Lifecycle
    let logger: Logger
    let counters: VMMCounters
    let pause: VCPUPause

    func run() {
        // Thread-local signal mask: termination signals stay blocked (the signal thread
        // takes them); the kick signal must reach this thread to interrupt KVM_RUN.
        _ = volt_unblock_signal(VCPUKick.signal)
        pause.checkpoint(vcpu)   // a VM restored paused parks before its first instruction
        if vcpu.index == 0 { StartupTrace.mark("vCPU 0: first KVM_RUN") }
        while !lifecycle.isFinished {
            let r = volt_ioctl(vcpu.fd, VOLT_KVM_RUN, nil)
            if r < 0 {
                if -r == EINTR || -r == EAGAIN {
                    vcpu.run.pointee.immediate_exit = 0
                    pause.checkpoint(vcpu)
                    continue
                }
                lifecycle.finish(.failure("vCPU \(vcpu.index): KVM_RUN failed: \(String(cString: strerror(-r)))"))
                return
            }
            if let outcome = handleExit() {
                lifecycle.finish(outcome)
                return
            }
        }
    }

    /// Handles one exit; returns an outcome when the VM must stop.
    private func handleExit() -> VMOutcome? {
        let run = vcpu.run
        let reason = Int32(run.pointee.exit_reason)
        if reason != KVM_EXIT_IO && reason != KVM_EXIT_MMIO { counters.exitsOther.add(1, ordering: .relaxed) }
        switch Int32(run.pointee.exit_reason) {
        case KVM_EXIT_IO:
            counters.exitsIO.add(1, ordering: .relaxed)
            let io = run.pointee.io
            let base = UnsafeMutableRawPointer(run) + Int(io.data_offset)
            let size = Int(io.size)
            for i in 0..<Int(io.count) {
                let slot = UnsafeMutableRawBufferPointer(start: base + i * size, count: size)
                if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                    ioBus.write(port: io.port, data: UnsafeRawBufferPointer(slot))
                } else {
                    ioBus.read(port: io.port, into: slot)
                }
            }
            return nil
        case KVM_EXIT_MMIO:
            counters.exitsMMIO.add(1, ordering: .relaxed)
            let address = run.pointee.mmio.phys_addr
            let length = min(Int(run.pointee.mmio.len), 8)
            let isWrite = run.pointee.mmio.is_write != 0
            withUnsafeMutableBytes(of: &run.pointee.mmio.data) { bytes in
                let slot = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])
                if isWrite {
                    mmioBus.write(address: address, data: UnsafeRawBufferPointer(slot))
                } else {
                    mmioBus.read(address: address, into: slot)
                }
            }
            return nil
        case KVM_EXIT_SHUTDOWN:
            return .failure("vCPU \(vcpu.index): guest triple fault (KVM_EXIT_SHUTDOWN) at \(location())")
        case KVM_EXIT_FAIL_ENTRY:
            let reason = run.pointee.fail_entry.hardware_entry_failure_reason
            return .failure("vCPU \(vcpu.index): KVM entry failed, hardware reason 0x\(String(reason, radix: 16)) at \(location())")
        case KVM_EXIT_INTERNAL_ERROR:
            let suberror = run.pointee.internal.suberror
            let kind = suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) ? " (emulation failure)" : ""
            return .failure("vCPU \(vcpu.index): KVM internal error, suberror \(suberror)\(kind) at \(location())")
        case KVM_EXIT_SYSTEM_EVENT:
            switch Int32(run.pointee.system_event.type) {
            case KVM_SYSTEM_EVENT_RESET: return .guestReset
            case KVM_SYSTEM_EVENT_SHUTDOWN: return .guestShutdown
            default: return .failure("vCPU \(vcpu.index): guest system event \(run.pointee.system_event.type) (crash)")
            }
        case KVM_EXIT_HLT:
            return .guestShutdown
        default:
            return .failure("vCPU \(vcpu.index): unexpected KVM exit reason \(run.pointee.exit_reason) at \(location())")
        }
    }

    private func location() -> String {
        guard let regs = try? vcpu.registers() else { return "unknown RIP" }
        return "RIP 0x\(String(regs.rip, radix: 16))"
    }
}

/// The signal used to kick vCPU threads out of KVM_RUN.
enum VCPUKick {
    static let signal: Int32 = SIGUSR1
}
