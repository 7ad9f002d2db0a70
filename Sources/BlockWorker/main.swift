import CShim
import Glibc
import IPC
import Sandbox
import SystemPackage

// volt-blk-worker: a vhost-user-blk back-end for raw images (one process per disk).
// Follows the vhost-user spec's back-end program conventions: --socket-path/--fd,
// --print-capabilities, no daemonizing, exit 0 on SIGTERM or front-end disconnect.
//
// Order: options; image; connection; sandbox (before any thread and before the first
// message); signal thread; vhost-user loop (queue threads start on demand).

func fail(_ message: String, code: CInt = 2) -> Never {
    fputs("volt-blk-worker: error: \(message)\n", stderr)
    exit(code)
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail(error.description)
}
if options.help { fputs(Options.usage, stdout); exit(0) }
if options.printCapabilities { print(Options.capabilities); exit(0) }

// Until the signal thread runs, SIGTERM & co. end the process at once with status 0.
if volt_exit_on_termination_signals() < 0 { fail("cannot handle termination signals", code: 1) }

// The image is opened first: before any sandbox, and before accepting a connection.
let disk: DiskImage
do {
    disk = try DiskImage(path: options.imagePath, imageFD: options.imageFD,
                         readOnly: options.readOnly, direct: options.direct)
} catch {
    fail(error.description, code: 1)
}
if disk.capacity == 0 { fail("the image is smaller than one 512-byte sector: use a larger image", code: 1) }

var deviceOptions = BlockDeviceOptions()
deviceOptions.queueCount = options.numQueues
deviceOptions.maxQueueSize = options.queueSize
deviceOptions.serial = options.serial
deviceOptions.faults = options.faults
// The VMM's metrics page (counters it reads), mapped before the sandbox.
let metricsPage: MetricsPage?
do {
    metricsPage = try options.metricsFD.map { try MetricsPage(adopting: FileDescriptor(rawValue: $0)) }
} catch {
    fail("--metrics-fd: \(error)", code: 1)
}
let device = BlockDevice(disk: disk, options: deviceOptions, metrics: Metrics(page: metricsPage))

let connection: Connection
do {
    guard let endpoint = options.endpoint else { fail("no vhost-user socket: pass --socket-path PATH or --fd N") }
    connection = try endpoint.connect()
} catch {
    fail("cannot get a vhost-user connection: \(error)", code: 1)
}

// Termination signals go to one waiting thread, blocked everywhere else (threads
// created later inherit the mask).
if volt_block_termination_signals() < 0 { fail("cannot block termination signals", code: 1) }

if options.sandbox.enabled {
    let imageFDs = [disk.fd] + (disk.bufferedFD.map { [$0] } ?? [])
    var rules = SeccompPolicy.rules(socket: connection.socket.rawValue, imageFDs: imageFDs, readOnly: disk.readOnly)
    if options.sandbox.probe { rules += SandboxProbe.pathRules }
    // fds: stdio, socket, image fds, two memory tables of 8 regions (old and new during
    // SET_MEM_TABLE), and per queue kick, call, err and the thread's stop eventfd.
    var plan = SandboxPlan(maxOpenFiles: UInt64(3 + 1 + imageFDs.count + 2 * 8 + 4 * options.numQueues + 16),
                           maxFileSize: nil, seccomp: rules)
    plan.seccompMode = options.sandbox.seccompMode
    do { _ = try Sandbox.apply(plan) } catch { fail(error.description, code: 1) }
    if options.sandbox.probe { SandboxProbe.run() }
}

var signalThread = pthread_t()
_ = pthread_create(&signalThread, nil, { _ in
    let sig = volt_wait_termination_signal()
    _ = sig
    // Completed writes are in the page cache (or on disk with --direct) and survive
    // the process; FLUSH is how a guest makes them durable. Nothing else to save.
    fflush(nil)
    _exit(0)
}, nil)

let handler = BackendRequestHandler(connection: connection, device: device)
if options.sandbox.faultForbiddenSyscall {
    handler.willHandle = { if $0 == .setOwner { SandboxProbe.forbiddenSyscall() } }
}
do {
    try handler.run()
    // The front-end hung up: stop the queues and exit cleanly.
    device.stopAll()
    exit(0)
} catch {
    device.stopAll()
    fail("vhost-user connection ended: \(error)", code: 1)
}
