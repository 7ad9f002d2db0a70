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
    case restoreWithMachineFlags
    case pausedWithoutAPI
    case badOverride(String)
    case overrideWithoutRestore

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
        case .restoreWithMachineFlags:
            return "--restore takes the machine and its devices from the snapshot: drop --kernel, --config, --disk, --net, --entropy, --vhost-user-*, --memory and --vcpus (--override NAME=VALUE renames a disk image or TAP)"
        case .pausedWithoutAPI:
            return "--restore-paused needs --api-sock: only the API can resume the VM"
        case let .badOverride(text):
            return "--override \(text): write NAME=VALUE, e.g. disk0=/images/copy.img or net1=tap7"
        case .overrideWithoutRestore:
            return "--override and --restore-paused go with --restore DIR"
        }
    }
}
