import IPC
import VirtioCore
import WorkerCore

// volt-net-worker: a vhost-user-net back-end over a TAP device. One thread per queue
// pair moves packets (the framework's queue threads); the process skeleton
// (conventions, sandbox, signals, exit codes) is WorkerMain's.

enum NetWorker: WorkerProgram {
    typealias Arguments = NetArguments
    static let name = "volt-net-worker"
    /// vhost-user.rst, "Backend program conventions": type only, no optional features.
    static let capabilities = #"{"type": "net"}"#

    static var usage: String {
        """
        usage: volt-net-worker (--socket-path PATH | --fd N) (--tap NAME | --tap-fd N...) [options]
               volt-net-worker --print-capabilities

        vhost-user-net back-end over a TAP device.

          --tap NAME           open (or create) the TAP NAME (needs CAP_NET_ADMIN)
          --tap-fd N           an inherited TAP queue fd (repeat: one per queue pair)
          --mac AA:BB:CC:DD:EE:FF  the guest's MAC in config space
          --mtu N              MTU in config space, 68-65535
          --num-queue-pairs N  queue pairs, 1-64 (default: one per --tap-fd, else 1)
          --queue-size N       largest queue size, a power of two up to 32768 (default 1024)
        \(WorkerArguments<NetArguments>.commonUsage)
        """
    }

    /// TAPs first: opening by name needs privileges a sandbox would take away.
    static func makeDevice(_ arguments: WorkerArguments<NetArguments>) throws -> (any BackendDevice, DeviceSandbox) {
        let a = arguments.device
        let taps: [Tap]
        switch a.taps {
        case let .name(name)?: taps = try Tap.open(name: name, count: a.pairs)
        case let .fds(fds)?: taps = try fds.map { fd throws(NetWorkerError) in try Tap.adopt(fd: fd) }
        case nil: throw NetWorkerError.usage("no TAP device", fix: "pass --tap NAME or --tap-fd N")
        }
        let config = NetDeviceConfig(mac: a.mac, mtu: a.mtu, queuePairs: a.pairs, queueSize: a.queueSize, faults: arguments.faults)
        let tapFDs = taps.map(\.fd.rawValue)
        let sandbox = DeviceSandbox(seccomp: SeccompPolicy.net(tapFDs: tapFDs), heldFDs: tapFDs.count, maxFileSize: 0)
        return (try NetDevice(config: config, taps: taps), sandbox)
    }
}

WorkerMain.run(NetWorker.self)
