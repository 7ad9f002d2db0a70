import VMM

/// How `volt-vmm` exits. The VMM's errors say what failed; only here does that become an
/// exit status: 2 when what the operator gave is at fault (a flag, a file, a name: fixing
/// the input fixes it), 1 for failures at run time (host, KVM, workers, the guest).
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 2

    /// Errors that are not `ExitCoded` are runtime failures: the VMM's runtime-only errors
    /// (KVMError, ProcessError, GuestMemoryError, ...) are not even public.
    static func code(for error: any Error) -> Int32 {
        (error as? ExitCoded)?.exitCode ?? failure
    }
}

/// An error that can be the operator's fault, and which of its cases are.
protocol ExitCoded: Error {
    var exitCode: Int32 { get }
}

extension VMOutcome {
    /// 0 when the guest reset or shut down, 128+N when stopped by signal N, 1 for a failure.
    var exitCode: Int32 {
        switch self {
        case .guestReset, .guestShutdown: return 0
        case let .signal(sig): return 128 + sig
        case .failure: return ExitStatus.failure
        }
    }
}

// Wholly about the operator's input.
extension RunUsageError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension ConfigError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension ConfigProblems: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension KernelError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension KernelImageError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension BootLoaderError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }
extension MetricsError: ExitCoded { var exitCode: Int32 { ExitStatus.usage } }

// Partly: each case decided here (no default, so a new case must be classified).
extension MachineError: ExitCoded {
    var exitCode: Int32 {
        switch self {
        case .vcpusUnsupported: return ExitStatus.usage
        case .landlockFailed, .capabilityDropFailed, .threadStartFailed, .eventfdFailed: return ExitStatus.failure
        }
    }
}

extension RuntimeDirectoryError: ExitCoded {
    var exitCode: Int32 {
        switch self {
        case .alreadyRunning: return ExitStatus.usage
        case .baseUncreatable, .uncreatable, .pidFileUnwritable: return ExitStatus.failure
        }
    }
}

extension DeviceError: ExitCoded {
    var exitCode: Int32 {
        switch self {
        case .tooManyDevices, .diskUnopenable, .diskNotAFileOrBlockDevice, .diskSizeNotSectorMultiple, .backendUnreachable:
            return ExitStatus.usage
        case .workerEnded, .noHostNIC, .eventfdFailed, .noVersion1, .queueCountOutOfRange, .handshakeFailed,
             .activationFailed, .restartedBackendDiffers, .replayFailed, .ringNotInGuestRAM:
            return ExitStatus.failure
        }
    }
}

extension HostNetworkError: ExitCoded {
    var exitCode: Int32 {
        switch self {
        case .tapNameTaken, .macTaken, .bridgeNotFound, .notABridge, .tapExists, .tapNotFound, .notATap,
             .tapFlagsMismatch, .tapBusy:
            return ExitStatus.usage
        case .portVanished, .addPortFailed, .linkUpFailed, .setMTUFailed, .tunMissing, .tapPermissionDenied,
             .tapOpenFailed, .networkdDirectoryFailed, .networkdWriteFailed:
            return ExitStatus.failure
        }
    }
}

/// A snapshot file that cannot be restored is the operator's input; failing to take one is not.
extension SnapshotError: ExitCoded {
    var exitCode: Int32 {
        switch self {
        case .invalid, .notASnapshot, .version, .truncated, .checksum, .memoryFileSize, .hostLacksCPUFeatures, .file:
            return ExitStatus.usage
        case .notPaused, .unsupported, .failed:
            return ExitStatus.failure
        }
    }
}
