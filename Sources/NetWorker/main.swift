@preconcurrency import Glibc
import CShim
import IPC
import SystemPackage

// volt-net-worker: a vhost-user-net back-end over a TAP device. One thread serves the
// vhost-user socket, one thread per queue pair moves packets, one waits for signals.

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

// TAPs first: opening by name needs privileges a sandbox would take away.
let taps: [Tap]
do {
    if let name = options.tapName {
        taps = try Tap.open(name: name, count: options.device.queuePairs)
    } else {
        taps = try options.tapFds.map { fd throws(NetWorkerError) in try Tap.adopt(fd: fd) }
    }
} catch { fail(error.description) }

// Termination signals go to one thread only; threads started later inherit the mask.
_ = volt_block_termination_signals()

let device: NetDevice
do {
    var metrics: MetricsPublisher?
    if let fd = options.metricsFD {
        do { metrics = try MetricsPublisher(page: try MetricsPage(adopting: FileDescriptor(rawValue: fd))) } catch { fail("--metrics-fd: \(error)", status: 1) }
    }
    device = try NetDevice(config: options.device, taps: taps, metrics: metrics)
    try device.start()
} catch { fail(error.description, status: 1) }

do {
    _ = try WorkerThread.start(name: "net-signals") {
        let sig = volt_wait_termination_signal()
        logLine("signal \(sig): exiting; \(device.metrics().line)")
        exit(0)
    }
} catch { fail(error.description, status: 1) }

let connection: Connection
do { connection = try options.endpoint!.connect() } catch { fail("vhost-user endpoint: \(error)", status: 1) }
let handler = BackendRequestHandler(connection: connection, device: device)
do {
    try handler.run()
    logLine("front-end disconnected; \(device.metrics().line)")
    exit(0)
} catch {
    logLine("error: vhost-user: \(error); \(device.metrics().line)")
    exit(1)
}
