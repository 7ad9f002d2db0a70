import CShim
import Glibc
import IPC
import WorkerCore

// volt-vsock-worker: a vhost-user virtio-vsock back-end for one guest CID with
// Firecracker's host-side protocol (hybrid vsock over Unix sockets). The process
// skeleton is WorkerMain's; `HostSide.open` makes the listener before the sandbox.

enum VsockWorker: WorkerProgram {
    typealias Arguments = VsockArguments
    static let name = "volt-vsock-worker"
    static let capabilities = #"{"type": "vsock"}"#

    static var usage: String {
        """
        usage: volt-vsock-worker (--socket-path PATH | --fd N) --guest-cid N --uds-path PATH [options]
               volt-vsock-worker --print-capabilities

        vhost-user virtio-vsock back-end (stream sockets) with Firecracker's host side:
        a host process connects to --uds-path and sends "CONNECT <port>\\n", the worker
        answers "OK <host_port>\\n" once the guest accepted; a guest connecting to CID 2
        port P reaches the Unix socket <uds-path>_P.

          --guest-cid N        the guest's context ID (3...4294967294)
          --uds-path PATH      the host-side Unix socket (absolute; put it in a directory
                               of its own: the jail reaches the sockets in that directory)
          --uds-fd N           an inherited socket already listening on --uds-path
          --transport-reset    tell the guest TRANSPORT_RESET once the event queue runs
          --connect-timeout-ms N
                               a host peer's CONNECT line and the guest's answer must come
                               within N ms (default 2000)
          --queue-size N       largest queue size, a power of two up to 32768 (default 256)
        \(WorkerArguments<VsockArguments>.commonUsage)
        """
    }

    static func makeDevice(_ arguments: WorkerArguments<VsockArguments>) throws -> (any BackendDevice, DeviceSandbox) {
        let a = arguments.device
        let side = try HostSide.open(a, jailed: arguments.sandbox.enabled)
        // A host peer that hangs up must not kill the worker on its next write.
        signal(SIGPIPE, SIG_IGN)
        let config = VsockConfig(guestCID: a.guestCID, listenFD: side.listenFD, connectPrefix: side.connectPrefix,
                                 connectTimeoutMs: a.connectTimeoutMs, transportReset: a.transportReset, queueSize: a.queueSize)
        return (VsockDevice(config: config, faults: arguments.faults),
                SeccompPolicy.device(listenFD: side.listenFD, rootDirectory: side.rootDirectory))
    }
}

WorkerMain.run(VsockWorker.self)
