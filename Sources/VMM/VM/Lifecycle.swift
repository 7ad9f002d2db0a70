import CShim
import Glibc
import SystemPackage
import Synchronization

/// How a VM run ended. The first outcome reported wins.
public enum VMOutcome: Equatable, CustomStringConvertible {
    case guestReset
    case guestShutdown
    case signal(Int32)
    case failure(String)

    public var description: String {
        switch self {
        case .guestReset: return "guest requested a reset"
        case .guestShutdown: return "guest shut down"
        case let .signal(sig): return "stopped by signal \(sig)"
        case let .failure(why): return why
        }
    }
}

/// Collects the outcome from whichever thread sees it first and wakes the main thread.
final class Lifecycle: Sendable {
    private let outcome = Mutex<VMOutcome?>(nil)
    /// Set once an outcome is recorded: every vCPU exit checks it, so no lock on that path.
    private let finished = Atomic<Bool>(false)
    private let wakeFD: Int32

    init() throws {
        let fd = volt_eventfd(0, VOLT_EFD_CLOEXEC)
        guard fd >= 0 else { throw MachineError.eventfdFailed(Errno(rawValue: -fd)) }
        wakeFD = fd
    }

    deinit { close(wakeFD) }

    var isFinished: Bool { finished.load(ordering: .acquiring) }

    func finish(_ result: VMOutcome) {
        let first = outcome.withLock { current -> Bool in
            guard current == nil else { return false }
            current = result
            return true
        }
        if first {
            finished.store(true, ordering: .releasing)
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    /// Blocks until some thread calls `finish`.
    func wait() -> VMOutcome {
        while true {
            if let result = outcome.withLock({ $0 }) { return result }
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
        }
    }
}
