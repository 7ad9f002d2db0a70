import CShim
import Glibc
import IPC
import SystemPackage

// volt-blk-worker: a vhost-user-blk back-end for raw images (one process per disk).
// Follows the vhost-user spec's back-end program conventions: --socket-path/--fd,
// --print-capabilities, no daemonizing, exit 0 on SIGTERM or front-end disconnect.

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

// Termination signals go to one waiting thread, blocked everywhere else (threads
// created later inherit the mask).
if volt_block_termination_signals() < 0 { fail("cannot block termination signals", code: 1) }

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
let metricsPage: MetricsPage?
do {
    metricsPage = try options.metricsFD.map { try MetricsPage(adopting: FileDescriptor(rawValue: $0)) }
} catch {
    fail("--metrics-fd: \(error)", code: 1)
}
let device = BlockDevice(disk: disk, options: deviceOptions, metrics: Metrics(page: metricsPage))

var signalThread = pthread_t()
_ = pthread_create(&signalThread, nil, { _ in
    let sig = volt_wait_termination_signal()
    _ = sig
    // Completed writes are in the page cache (or on disk with --direct) and survive
    // the process; FLUSH is how a guest makes them durable. Nothing else to save.
    fflush(nil)
    _exit(0)
}, nil)

let connection: Connection
do {
    guard let endpoint = options.endpoint else { fail("no vhost-user socket: pass --socket-path PATH or --fd N") }
    connection = try endpoint.connect()
} catch {
    fail("cannot get a vhost-user connection: \(error)", code: 1)
}

let handler = BackendRequestHandler(connection: connection, device: device)
do {
    try handler.run()
    // The front-end hung up: stop the queues and exit cleanly.
    device.stopAll()
    exit(0)
} catch {
    device.stopAll()
    fail("vhost-user connection ended: \(error)", code: 1)
}
