@preconcurrency import Glibc
import CShim
import IPC
import Sandbox
import SystemPackage

/// A worker program: its name, help and capabilities, and how it builds its device
/// from its command line. `WorkerMain.run` does the rest.
public protocol WorkerProgram {
    associatedtype Arguments: DeviceArguments
    /// "volt-blk-worker": prefixes every log line.
    static var name: String { get }
    /// The whole `--help` text.
    static var usage: String { get }
    /// `--print-capabilities` (vhost-user.rst, "Backend program conventions").
    static var capabilities: String { get }
    /// Opens the device's host resources and builds the device. Runs before the
    /// connection and the sandbox, with the caller's privileges. A `WorkerFailure`
    /// names the exit status (`WorkerError.usage`: 2), anything else exits 1.
    static func makeDevice(_ arguments: WorkerArguments<Arguments>) throws -> (any BackendDevice, DeviceSandbox)
}

/// The life of every worker process, in this order: options; the device's resources
/// (image, TAPs); the device and its queue threads' fds; the vhost-user connection; the
/// sandbox (before any thread and before the first message); the queue threads and the
/// signal thread; the vhost-user loop. Exit status: 0 on
/// SIGTERM/SIGINT/SIGHUP/SIGQUIT or front-end disconnect, 1 on a protocol or runtime
/// failure, 2 on a bad command line; every failure is one line on stderr.
public enum WorkerMain {
    public static func run<P: WorkerProgram>(_: P.Type, arguments raw: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        StartupTrace.mark("Swift main")
        WorkerLog.program = P.name
        let arguments: WorkerArguments<P.Arguments>
        do { arguments = try .parse(raw) } catch { fail(error.description, status: 2) }
        if arguments.help { print(P.usage); exit(0) }
        if arguments.printCapabilities { print(P.capabilities); exit(0) }

        // Until the signal thread runs, SIGTERM & co. end the process at once with status 0.
        if volt_exit_on_termination_signals() < 0 { fail("cannot handle termination signals", status: 1) }

        // The VMM's metrics page, mapped before the sandbox.
        var page: MetricsPage?
        do { page = try arguments.metricsFD.map { try MetricsPage(adopting: FileDescriptor(rawValue: $0)) } } catch {
            fail("--metrics-fd: \(error)", status: 1)
        }
        StartupTrace.mark("arguments parsed, metrics page mapped")
        let device: any BackendDevice, needs: DeviceSandbox
        do { (device, needs) = try P.makeDevice(arguments) } catch {
            fail("\(error)", status: (error as? any WorkerFailure)?.exitStatus ?? 1)
        }
        let backend: DeviceBackend
        do { backend = try DeviceBackend(device: device, metrics: page) } catch { fail("\(error)", status: 1) }

        StartupTrace.mark("device and backend made")
        let connection: Connection
        do {
            guard let endpoint = arguments.endpoint else { fail("no vhost-user socket (fix: pass --socket-path PATH or --fd N)", status: 2) }
            connection = try endpoint.connect()
        } catch {
            fail("cannot get a vhost-user connection: \(error)", status: 1)
        }

        // Termination signals go to one waiting thread, blocked everywhere else
        // (threads created later inherit the mask).
        if volt_block_termination_signals() < 0 { fail("cannot block termination signals", status: 1) }

        if arguments.sandbox.enabled {
            var rules = WorkerPolicy.rules(socket: connection.socket.rawValue, device: needs)
            if arguments.sandbox.probe { rules += SandboxProbe.pathRules }
            var plan = SandboxPlan(maxOpenFiles: WorkerPolicy.maxOpenFiles(device: needs, threads: backend.threadCount,
                                                                          queues: backend.queueCount),
                                   maxFileSize: WorkerPolicy.maxFileSize(device: needs), seccomp: rules)
            plan.seccompMode = arguments.sandbox.seccompLogOnly ? .log : .kill
            plan.rootDirectory = needs.rootDirectory
            do { _ = try Sandbox.apply(plan) } catch { fail(error.description, status: 1) }
            if arguments.sandbox.probe { SandboxProbe.run() }
        }

        let counters = backend.counters
        do {
            StartupTrace.mark("sandboxed")
            try backend.start()
            _ = try WorkerThread.start(name: "signals") {
                let sig = volt_wait_termination_signal()
                // Completed requests are where the device put them (a disk's page cache,
                // a TAP); FLUSH is how a guest makes writes durable. Nothing else to save.
                WorkerLog.line("signal \(sig): exiting; \(counters.line)")
                fflush(nil)
                _exit(0)
            }
        } catch { fail("\(error)", status: 1) }

        StartupTrace.mark("queue and signal threads started")
        let handler = BackendRequestHandler(connection: connection, device: backend)
        let faultForbiddenSyscall = arguments.sandbox.faultForbiddenSyscall
        var traced = !StartupTrace.enabled
        if !traced || faultForbiddenSyscall {
            handler.willHandle = { request in
                if !traced {
                    traced = true
                    StartupTrace.mark("first vhost-user message")
                    StartupTrace.dump(program: P.name)
                }
                if faultForbiddenSyscall && request == .setOwner { SandboxProbe.forbiddenSyscall() }
            }
        }
        do {
            try handler.run()
            WorkerLog.line("front-end disconnected; \(counters.line)")
            exit(0)
        } catch {
            WorkerLog.line("error: vhost-user connection ended: \(error); \(counters.line)")
            exit(1)
        }
    }

    /// One line on stderr, then exit.
    public static func fail(_ message: String, status: Int32) -> Never {
        WorkerLog.line("error: " + message)
        exit(status)
    }
}
