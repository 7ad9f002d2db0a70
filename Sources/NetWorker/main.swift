@preconcurrency import Glibc
import CShim
import IPC
import Sandbox
import SystemPackage

// volt-net-worker: a vhost-user-net back-end over a TAP device. One thread serves the
// vhost-user socket, one thread per queue pair moves packets, one waits for signals.
//
// Order: options; TAPs; device (epoll sets, no threads yet); connection; sandbox
// (before any thread and before the first message); pair threads; signal thread;
// vhost-user loop.

func fail(_ message: String, status: Int32 = 2) -> Never {
    logLine("error: " + message)
    exit(status)
}

let options: Options
do { options = try Options.parse(Array(CommandLine.arguments.dropFirst())) } catch { fail(error.description) }

if options.help {
    print(Options.usage)
    exit(0)
}
if options.printCapabilities {
    // vhost-user.rst, "Backend program conventions": type only, no optional features.
    print("{\"type\": \"net\"}")
    exit(0)
}

// Until the signal thread runs, SIGTERM & co. end the process at once with status 0.
_ = volt_exit_on_termination_signals()

// TAPs first: opening by name needs privileges a sandbox would take away.
let taps: [Tap]
do {
    if let name = options.tapName {
        taps = try Tap.open(name: name, count: options.device.queuePairs)
    } else {
        taps = try options.tapFds.map { fd throws(NetWorkerError) in try Tap.adopt(fd: fd) }
    }
} catch { fail(error.description) }

// The VMM's metrics page, mapped before the sandbox.
var metrics: MetricsPublisher?
if let fd = options.metricsFD {
    do { metrics = try MetricsPublisher(page: try MetricsPage(adopting: FileDescriptor(rawValue: fd))) } catch { fail("--metrics-fd: \(error)", status: 1) }
}

let device: NetDevice
do { device = try NetDevice(config: options.device, taps: taps, metrics: metrics) } catch { fail(error.description, status: 1) }

let connection: Connection
do { connection = try options.endpoint!.connect() } catch { fail("vhost-user endpoint: \(error)", status: 1) }

// Termination signals go to one thread only; threads started later inherit the mask.
_ = volt_block_termination_signals()

if options.sandbox.enabled {
    let tapFDs = taps.map(\.fd.rawValue)
    var rules = SeccompPolicy.rules(socket: connection.socket.rawValue, tapFDs: tapFDs)
    if options.sandbox.probe { rules += SandboxProbe.pathRules }
    // fds: stdio, socket, TAP queues, two memory tables of 8 regions (old and new during
    // SET_MEM_TABLE), per pair an epoll and a wake eventfd, per queue (2 per pair +
    // control) kick, call and err.
    let pairs = options.device.queuePairs
    var plan = SandboxPlan(maxOpenFiles: UInt64(3 + 1 + tapFDs.count + 2 * 8 + 2 * pairs + 3 * (2 * pairs + 1) + 16),
                           maxFileSize: 0, seccomp: rules)
    plan.seccompMode = options.sandbox.seccompMode
    do { _ = try Sandbox.apply(plan) } catch { fail(error.description, status: 1) }
    if options.sandbox.probe { SandboxProbe.run() }
}

do {
    try device.start()
    _ = try WorkerThread.start(name: "net-signals") {
        let sig = volt_wait_termination_signal()
        logLine("signal \(sig): exiting; \(device.metrics().line)")
        exit(0)
    }
} catch { fail(error.description, status: 1) }

let handler = BackendRequestHandler(connection: connection, device: device)
if options.sandbox.faultForbiddenSyscall {
    handler.willHandle = { if $0 == .setOwner { SandboxProbe.forbiddenSyscall() } }
}
do {
    try handler.run()
    logLine("front-end disconnected; \(device.metrics().line)")
    exit(0)
} catch {
    logLine("error: vhost-user: \(error); \(device.metrics().line)")
    exit(1)
}
