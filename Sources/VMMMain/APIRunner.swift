@preconcurrency import Glibc
import ArgumentParser
import CShim
import Logging
import Sandbox
import VMM

/// A VM driven through Firecracker's API: the API thread serves the socket (from before
/// the VM exists until it ends); the main thread builds and runs the machine each time
/// InstanceStart asks (a failed start is a 400 and the VM stays configurable), or at once
/// when the command line had a kernel. The process ends with the VM.
struct APIRunner {
    /// nil: `--no-api` (the configuration must be complete, the VM starts at once).
    var socketPath: String?
    var resources: VMResources
    var startAtOnce: Bool
    var vmID: VMID
    var kernelStore: String?
    var defaultCmdline: String
    var maxPayload = 51200
    var logLevel: Logger.Level = .notice
    /// The API thread's own jail (`--no-seccomp`, `--seccomp=log`, `--no-landlock`).
    var seccomp: SeccompMode? = .kill
    var landlock = true
    /// What the command line decides about the process that the API cannot change:
    /// seccomp, Landlock, restarts, metrics interval.
    var apply: (inout MachineConfig) -> Void = { _ in }
    /// Where snapshots may be written (`--snapshot-dir`); the API makes them possible.
    var snapshotDirectories: [String] = []
    /// `run --restore DIR`: start from this snapshot at once.
    var restore: SnapshotLoad?

    func run() throws -> Int32 {
        let start = volt_monotonic_ns()
        // Only one thread takes termination signals: before start the controller's
        // waiter, then the machine's signal thread. The API thread inherits the mask.
        _ = volt_block_termination_signals()
        let controller = VMController(resources: resources, instanceID: vmID.description, kernelStore: kernelStore)
        var console = LogSetup.logger(level: logLevel)
        let api = try socketPath.map { path in
            try APIThread.start(socketPath: path, controller: controller, maxPayload: maxPayload, logger: console,
                                seccomp: seccomp, landlock: landlock)
        }
        // Before the VM's lock-down the socket is ours to remove; after it, the launcher
        // removes it when volt-vmm ends, however it ends.
        defer { api?.removeSocketIfStillOurs() }
        if let api { console.notice("API socket \(api.socketPath): waiting for requests") }
        if let restore { controller.startRestore(restore) } else if startAtOnce { controller.start() }
        while true {
            var building: Machine?
            let next = try controller.waitForStartOrSignal()
            if case let .terminate(signal) = next {
                console.notice("stopped by signal \(signal) before InstanceStart")
                return 128 + signal
            }
            do {
                var config: MachineConfig
                var logging: LoggerConfig?
                switch next {
                case let .start(wanted):
                    config = try wanted.machineConfig(vmID: vmID, kernelStore: kernelStore, defaultCmdline: defaultCmdline)
                    logging = wanted.logger
                case let .restore(load):
                    let source = try RestoreSource.load(statePath: load.statePath, memoryPath: load.memoryPath, paused: !load.resume)
                    config = try source.machineConfig(vmID: vmID, overrides: load.overrides)
                    let current = controller.configuration
                    logging = current.logger
                    config.metricsPath = current.metrics?.metricsPath
                    controller.restored(VMResources(restoring: source, config: config, keeping: current))
                case .terminate:
                    return 1   // handled above
                }
                apply(&config)
                config.snapshotDirectories = snapshotDirectories
                if let api { config.removeAtExit.append(api.socketPath) }
                let logger = try LogSetup.logger(logging, fallback: logLevel)
                console = logger
                let runtime = try RuntimeDirectory(id: vmID)
                defer { runtime.remove() }
                config.runtimeDirectory = runtime.path
                let machine = Machine(config: config, logger: logger, startNanoseconds: start)
                building = machine
                let outcome = try machine.run { control in
                    api?.handOverSocketRemoval()
                    controller.started(control)
                }
                if case .failure = outcome { logger.error("\(outcome)") } else { logger.info("\(outcome)") }
                return outcome.exitCode
            } catch {
                // Only a start that failed during setup may be tried again.
                guard api != nil, !startAtOnce, restore == nil, building?.isPastSetup != true else { throw error }
                console.error("\(next.request) failed: \(error)")
                controller.startFailed(error)
            }
        }
    }
}

extension VMController.Next {
    /// The request that asked for this, for a log line.
    var request: String {
        switch self {
        case .start: return "InstanceStart"
        case .restore: return "PUT /snapshot/load"
        case .terminate: return "stop"
        }
    }
}
