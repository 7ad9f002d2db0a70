import IPC
import WorkerCore

// volt-rng-worker: a vhost-user virtio-rng (entropy) back-end filling the guest's
// buffers from getrandom(2), optionally rate-limited. The process skeleton is WorkerMain's.

enum EntropyWorker: WorkerProgram {
    typealias Arguments = EntropyArguments
    static let name = "volt-rng-worker"
    static let capabilities = #"{"type": "rng"}"#

    static var usage: String {
        """
        usage: volt-rng-worker (--socket-path PATH | --fd N) [options]
               volt-rng-worker --print-capabilities

        vhost-user virtio-rng back-end: the guest's entropy from getrandom(2).

          --bandwidth size=N,refill-ms=T[,burst=B]
                               at most N bytes per T ms (a token bucket, plus B bytes once)
          --ops size=N,refill-ms=T[,burst=B]
                               at most N requests per T ms
          --queue-size N       largest queue size, a power of two up to 32768 (default 1024)
        \(WorkerArguments<EntropyArguments>.commonUsage)
        """
    }

    static func makeDevice(_ arguments: WorkerArguments<EntropyArguments>) throws -> (any BackendDevice, DeviceSandbox) {
        (EntropyDevice(arguments: arguments.device, faults: arguments.faults), SeccompPolicy.device)
    }
}

WorkerMain.run(EntropyWorker.self)
