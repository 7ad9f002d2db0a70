import ArgumentParser
import Glibc
import Logging
import VMM

/// Firecracker's command line, so a tool that execs `firecracker --api-sock S` and talks to
/// S works unchanged: `volt-vmm firecracker [flags]`, or volt-vmm run through a link named
/// `firecracker`. Every device is still its own jailed worker process.
struct FirecrackerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firecracker",
        abstract: "Firecracker's command line and API: a VM configured through --api-sock and/or --config-file.",
        discussion: """
        Accepted and used: --api-sock, --config-file, --no-api, --id, --level, --log-path,
        --show-level, --show-log-origin, --metrics-path, --http-api-max-payload-size,
        --no-seccomp, --describe-snapshot, --version. Accepted and ignored (said so in the log): --boot-timer
        (volt-vmm's boot-timer port 0x440 is always there), --seccomp-filter (volt-vmm
        always loads its own per-thread filters; --no-seccomp turns them off),
        --start-time-us, --start-time-cpu-us, --parent-cpu-time-us, --mmds-size-limit,
        --module. Refused: --enable-pci (not supported).
        """)

    @Option(help: "Path of the API socket (mode 0600; refused if a live one is there).")
    var apiSock = "/run/firecracker.socket"

    @Option(help: "A Firecracker JSON config file: boot-source, drives, network-interfaces, machine-config, entropy, logger, metrics.")
    var configFile: String?

    @Flag(help: "No API socket: the VM boots from --config-file alone.")
    var noApi = false

    @Option(help: "The microVM's id ([a-zA-Z0-9_-], at most 32).")
    var id = "anonymous-instance"

    @Option(help: "Log level: Error, Warning, Info, Debug, Trace, Off (Firecracker's default: Info).")
    var level = "Info"

    @Option(help: "A file or named pipe for the log (default: stderr).")
    var logPath: String?

    @Flag(help: "Show the level in each log line.") var showLevel = false
    @Flag(help: "Show the source file and line in each log line.") var showLogOrigin = false

    @Option(help: "A file or named pipe for the metrics (a JSON line every 60 s and on FlushMetrics).")
    var metricsPath: String?

    @Option(help: "The largest API request body, in bytes.")
    var httpApiMaxPayloadSize = 51200

    @Option(help: "volt-vmm's own: a directory snapshots may be written to (repeatable; default: the API socket's directory, unless other programs share it).")
    var snapshotDir: [String] = []

    @Flag(help: "UNSAFE, debugging only: no seccomp filters on volt-vmm's threads.") var noSeccomp = false
    @Flag(help: "Print the version and exit.") var version = false

    @Flag(help: .hidden) var bootTimer = false
    @Option(help: .hidden) var seccompFilter: String?
    @Option(help: .hidden) var startTimeUs: String?
    @Option(help: .hidden) var startTimeCpuUs: String?
    @Option(help: .hidden) var parentCpuTimeUs: String?
    @Option(help: .hidden) var mmdsSizeLimit: String?
    @Option(help: .hidden) var module: String?
    @Option(help: "Print the data format version of a snapshot state file and exit.") var describeSnapshot: String?
    @Flag(help: .hidden) var enablePci = false

    func run() throws {
        if let describeSnapshot {
            do { print("v\(try SnapshotFormat.version(ofStateFile: describeSnapshot)).0.0") } catch {
                fputs("volt-vmm: \(error)\n", stderr)
                throw ExitCode(ExitStatus.code(for: error))
            }
            return
        }
        if version {
            print("Firecracker v\(VMController.firecrackerAPIVersion) (volt-vmm \(VMController.vmmVersion), Firecracker-compatible)")
            return
        }
        do {
            throw ExitCode(try runner().run())
        } catch let error as ExitCode {
            throw error
        } catch {
            fputs("volt-vmm: \(error)\n", stderr)
            throw ExitCode(ExitStatus.code(for: error))
        }
    }

    /// Firecracker's DEFAULT_KERNEL_CMDLINE, for a boot source without boot_args (it
    /// turns the serial console off: give boot_args "console=ttyS0 ..." to see the guest).
    static let firecrackerDefaultCmdline = "reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"

    func runner() throws -> APIRunner {
        guard !enablePci else { throw RunUsageError.unsupportedFlag("--enable-pci", "volt-vmm's devices are virtio-mmio, there is no PCI") }
        guard LogSetup.firecrackerLevel(level) != nil else { throw RunUsageError.badLevel(level) }
        guard (1024...(16 << 20)).contains(httpApiMaxPayloadSize) else {
            throw RunUsageError.unsupportedFlag("--http-api-max-payload-size \(httpApiMaxPayloadSize)", "give 1024 to 16777216 bytes")
        }
        var resources = try configFile.map { try FirecrackerConfigFile.load(path: $0) } ?? VMResources()
        if noApi && configFile == nil { throw RunUsageError.noApiWithoutConfig }
        // The command line's logger and metrics come first; the file's or the API's override them.
        if resources.logger == nil, logPath != nil || showLevel || showLogOrigin || level != "Info" {
            var logger = LoggerConfig()
            logger.logPath = logPath
            logger.level = level
            logger.showLevel = showLevel
            logger.showLogOrigin = showLogOrigin
            resources.logger = logger
        }
        if resources.metrics == nil, let metricsPath { resources.metrics = MetricsConfig(metricsPath: metricsPath) }
        var runner = APIRunner(socketPath: noApi ? nil : apiSock, resources: resources,
                               startAtOnce: configFile != nil, vmID: try VMID(given: id), kernelStore: nil,
                               defaultCmdline: Self.firecrackerDefaultCmdline)
        runner.maxPayload = httpApiMaxPayloadSize
        let workingDirectory = WorkingDirectory.current
        runner.snapshotDirectories = snapshotDir.isEmpty
            ? SnapshotDirectories.firecrackerDefault(apiSocket: noApi ? nil : apiSock, workingDirectory: workingDirectory)
            : try SnapshotDirectories.validate(snapshotDir, workingDirectory: workingDirectory)
        runner.logLevel = LogSetup.firecrackerLevel(level) ?? .info
        if noSeccomp {
            runner.seccomp = nil
            LogSetup.logger(level: .warning).warning("--no-seccomp: no thread of volt-vmm has a seccomp filter (the workers keep theirs); a guest or API client that takes over volt-vmm can make any system call")
        }
        let noSeccomp = self.noSeccomp
        runner.apply = { config in
            if noSeccomp { config.seccomp = nil }
            // Firecracker flushes its metrics every 60 s (and on FlushMetrics).
            config.metricsIntervalMilliseconds = 60_000
        }
        var ignored: [String] = []
        if bootTimer { ignored.append("--boot-timer (the boot-timer port 0x440 is always there)") }
        if seccompFilter != nil { ignored.append("--seccomp-filter (volt-vmm loads its own per-thread filters)") }
        if startTimeUs != nil || startTimeCpuUs != nil || parentCpuTimeUs != nil { ignored.append("--start-time-us/--start-time-cpu-us/--parent-cpu-time-us") }
        if mmdsSizeLimit != nil { ignored.append("--mmds-size-limit (no MMDS)") }
        if module != nil { ignored.append("--module") }
        if !ignored.isEmpty { LogSetup.logger(level: .notice).notice("accepted and ignored: \(ignored.joined(separator: ", "))") }
        return runner
    }
}
