import Sandbox
import SystemPackage

/// Building or starting the VM itself failed (its devices, memory and boot payload have
/// their own errors): vCPUs the host cannot give, volt-vmm's own lock-down, its threads.
public enum MachineError: Error, CustomStringConvertible {
    case vcpusUnsupported(requested: Int, max: Int)
    case landlockFailed(SandboxError)
    case capabilityDropFailed(SandboxError)
    case threadStartFailed(name: String, code: Int32)
    case eventfdFailed(Errno)

    public var description: String {
        switch self {
        case let .vcpusUnsupported(requested, max):
            return "--vcpus \(requested): this host's KVM allows 1 to \(max) vCPUs per VM"
        case let .landlockFailed(error):
            return "cannot restrict volt-vmm with Landlock: \(error) — needs Linux 5.13+ with Landlock enabled (lsm=landlock); --no-landlock runs without it (unsafe)"
        case let .capabilityDropFailed(error):
            return "cannot drop volt-vmm's capabilities after setup: \(error) — --no-landlock skips the lock-down (unsafe)"
        case let .threadStartFailed(name, code):
            return "cannot start thread \(name): error \(code)"
        case let .eventfdFailed(errno):
            return "eventfd: \(errno)"
        }
    }
}
