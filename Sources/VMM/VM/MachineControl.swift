import CShim
import Glibc
import Synchronization

/// What a front door may do to a running VM (the API's `PATCH /vm`, `PUT /actions`):
/// pause and resume every vCPU, flush the metrics. Handed out by `Machine.run` once the
/// VM runs; every method may be called from any thread, one at a time.
public final class MachineControl: @unchecked Sendable {
    // @unchecked: `state` and `pausedClock` are only touched under `lock`.
    public enum State: Sendable { case running, paused }

    private let lock = Condition()
    private var state = State.running
    private var pausedClock: UInt64?
    private let vm: VirtualMachine
    private let vcpus: [VCPU]
    private let threads: [pthread_t]
    private let pauseGate: VCPUPause
    private let lifecycle: Lifecycle
    private let metrics: MetricsWriter?
    private let ctrlAltDel: @Sendable () throws(MachineControlError) -> Void
    /// The snapshot thread and what it reads; nil when this VM takes no snapshots.
    private let snapshots: (thread: SnapshotThread, source: SnapshotSource)?

    /// `pausedClock`: a VM restored paused starts paused, its kvmclock held there.
    init(vm: VirtualMachine, vcpus: [VCPU], threads: [pthread_t], pauseGate: VCPUPause, lifecycle: Lifecycle,
         metrics: MetricsWriter?, ctrlAltDel: @escaping @Sendable () throws(MachineControlError) -> Void,
         snapshots: (thread: SnapshotThread, source: SnapshotSource)? = nil, pausedClock: UInt64? = nil) {
        self.ctrlAltDel = ctrlAltDel
        self.snapshots = snapshots
        if let pausedClock {
            self.pausedClock = pausedClock
            state = .paused
        }
        self.vm = vm
        self.vcpus = vcpus
        self.threads = threads
        self.pauseGate = pauseGate
        self.lifecycle = lifecycle
        self.metrics = metrics
    }

    public var currentState: State { lock.withLock { state } }

    /// Stops every vCPU between two guest instructions and keeps the guest's clocks where
    /// they are (kvmclock read here; each vCPU keeps its TSC). Already paused: nothing.
    public func pause() throws(MachineControlError) {
        try lock.withLock { () throws(MachineControlError) in
            guard state == .running else { return }
            guard !lifecycle.isFinished else { throw .vmStopped }
            let parked = pauseGate.pause(kick: kickAll, milliseconds: 5000)
            guard parked else {
                pauseGate.resume()
                throw .vcpusDidNotStop
            }
            do { pausedClock = try vm.clock() } catch {
                pauseGate.resume()
                throw .clock("\(error)")
            }
            state = .paused
        }
    }

    /// Runs the vCPUs again, kvmclock continuing from where it stopped.
    public func resume() throws(MachineControlError) {
        try lock.withLock { () throws(MachineControlError) in
            guard state == .paused else { return }
            if let clock = pausedClock {
                do { try vm.setClock(clock) } catch { throw .clock("\(error)") }
            }
            pausedClock = nil
            pauseGate.resume()
            state = .running
        }
    }

    /// Ctrl+Alt+Del on the guest's i8042 keyboard (a guest with a keyboard driver reboots).
    public func sendCtrlAltDel() throws(MachineControlError) {
        guard !lifecycle.isFinished else { throw .vmStopped }
        try ctrlAltDel()
    }

    /// A full snapshot of the paused VM into `statePath` and `memoryPath` (Firecracker's
    /// PUT /snapshot/create); the VM stays paused and unchanged.
    public func snapshot(statePath: String, memoryPath: String) throws(SnapshotError) -> (memoryBytes: UInt64, stateBytes: Int) {
        guard let snapshots else { throw .unsupported("this volt-vmm was started without the API, which snapshots need") }
        return try lock.withLock { () throws(SnapshotError) in
            guard state == .paused, let clock = pausedClock else { throw .notPaused }
            let held = pauseGate.heldCycles()
            let source = snapshots.source
            let written = try snapshots.thread.run { () throws(SnapshotError) in
                try SnapshotWriter.write(source, clock: clock, heldTSC: held, statePath: statePath, memoryPath: memoryPath)
            }
            return (written.memoryBytes, written.stateBytes)
        }
    }

    /// Writes a metrics line now (no metrics file: nothing to do).
    public func flushMetrics() { metrics?.writeLine(final: false) }

    /// Every vCPU leaves KVM_RUN at its next chance.
    private func kickAll() {
        for (vcpu, thread) in zip(vcpus, threads) {
            vcpu.requestImmediateExit()
            _ = volt_thread_kill(UInt(thread), VCPUKick.signal)
        }
    }
}

public enum MachineControlError: Error, CustomStringConvertible, Equatable {
    case vmStopped
    case vcpusDidNotStop
    case clock(String)
    case keyboard(String)

    public var description: String {
        switch self {
        case .vmStopped: return "the VM has stopped"
        case .vcpusDidNotStop: return "the vCPUs did not stop within 5 s (one may be blocked on a device backend); the VM keeps running"
        case let .clock(why): return "cannot hold the guest clock (kvmclock): \(why)"
        case let .keyboard(why): return "cannot type Ctrl+Alt+Del: \(why)"
        }
    }
}
