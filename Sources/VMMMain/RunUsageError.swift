/// A `volt-vmm run` flag that is out of bounds before the VMM is asked anything.
enum RunUsageError: Error, Equatable, CustomStringConvertible {
    case noKernel
    case memoryTooSmall(mib: UInt64, minimumMiB: UInt64)
    case memoryExceedsHost(mib: UInt64, hostMiB: UInt64)
    case noVCPUs(Int)
    case metricsIntervalOutOfRange(Int)
    case unsupportedFlag(String, String)
    case badLevel(String)
    case noApiWithoutConfig

    var description: String {
        switch self {
        case .noKernel:
            return "no kernel: pass --kernel (a vmlinux, bzImage or stored kernel name) or set \"kernel\" in the config file"
        case let .memoryTooSmall(mib, minimum):
            return "--memory \(mib): a guest needs at least \(minimum) MiB"
        case let .memoryExceedsHost(mib, host):
            return "--memory \(mib): the host has only \(host) MiB of RAM"
        case let .noVCPUs(vcpus):
            return "--vcpus \(vcpus): a VM needs at least one vCPU"
        case let .metricsIntervalOutOfRange(ms):
            return "--metrics-interval \(ms): must be 100 to 3600000 ms"
        case let .unsupportedFlag(flag, why):
            return "\(flag): \(why)"
        case let .badLevel(level):
            return "--level \(level): use Error, Warning, Info, Debug, Trace or Off"
        case .noApiWithoutConfig:
            return "--no-api needs --config-file: without an API the VM is configured by the file alone"
        }
    }
}
