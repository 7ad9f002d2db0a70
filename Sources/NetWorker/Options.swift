import IPC
import Sandbox

/// volt-net-worker's command line (vhost-user "Backend program conventions" plus the
/// net options).
struct Options: Equatable {
    var endpoint: BackendEndpoint?
    var printCapabilities = false
    var help = false
    var tapName: String?
    var tapFds: [CInt] = []
    var device = NetDeviceConfig()
    /// Inherited metrics page (IPC.MetricsPage) the VMM reads the counters from.
    var metricsFD: CInt?
    var sandbox = SandboxFlags()

    static let usage = """
        usage: volt-net-worker (--socket-path PATH | --fd N) (--tap NAME | --tap-fd N...)
                               [--mac AA:BB:CC:DD:EE:FF] [--mtu N] [--num-queue-pairs N] [--queue-size N] [--metrics-fd N]
                               [--fault crash,after=N|drop,percent=P|corrupt,percent=P|syscall]...
               volt-net-worker --print-capabilities
        \(SandboxFlags.usage)
        """

    static func parse(_ args: [String]) throws(NetWorkerError) -> Options {
        var o = Options()
        do { o.endpoint = try BackendEndpoint.parse(args) } catch {
            throw .usage("\(error)", fix: "give exactly one of --socket-path PATH or --fd N")
        }
        var pairsGiven = false
        var i = 0
        while i < args.count {
            let arg = args[i]
            var name = arg
            var inline: String?
            if let eq = arg.firstIndex(of: "="), arg.hasPrefix("--") {
                name = String(arg[..<eq]); inline = String(arg[arg.index(after: eq)...])
            }
            func value() throws(NetWorkerError) -> String {
                if let inline { return inline }
                i += 1
                guard i < args.count else { throw .usage("\(name) needs a value", fix: "write \(name) VALUE") }
                return args[i]
            }
            func number(_ range: ClosedRange<Int>) throws(NetWorkerError) -> Int {
                let v = try value()
                guard let n = Int(v), range.contains(n) else {
                    throw .usage("\(name) \(v) is not a number in \(range.lowerBound)...\(range.upperBound)", fix: "pass a number in that range")
                }
                return n
            }
            switch name {
            case "--socket-path", "--fd": _ = try value()   // parsed by BackendEndpoint
            case "--print-capabilities": o.printCapabilities = true
            case "--help", "-h": o.help = true
            case "--tap":
                let v = try value()
                guard !v.isEmpty, v.utf8.count <= 15 else { throw .usage("--tap '\(v)' is not an interface name", fix: "pass a name of 1 to 15 bytes") }
                o.tapName = v
            case "--tap-fd": o.tapFds.append(CInt(try number(0...65535)))
            case "--metrics-fd": o.metricsFD = CInt(try number(0...Int(Int32.max)))
            case "--fault":
                let text = try value()
                do { o.device.faults.append(try FaultSpec.parse(text, device: .net)) } catch {
                    throw .usage("--fault: \(error.description)", fix: "see --help")
                }
                if o.device.faults.last?.kind == .syscall { o.sandbox.faultForbiddenSyscall = true }
            case "--mac": o.device.mac = try parseMAC(try value())
            case "--mtu": o.device.mtu = UInt16(try number(68...65535))
            case "--num-queue-pairs": o.device.queuePairs = try number(1...64); pairsGiven = true
            case "--queue-size":
                let n = try number(1...32768)
                guard n & (n - 1) == 0 else { throw .usage("--queue-size \(n) is not a power of two", fix: "pass 64, 128, 256, ...") }
                o.device.queueSize = n
            default:
                let used: Int?
                do { used = try o.sandbox.parse(name, inline: inline, next: i + 1 < args.count ? args[i + 1] : nil) }
                catch { throw .usage(error.description, fix: "see --help") }
                guard let used else { throw .usage("unknown argument '\(arg)'", fix: "see --help") }
                i += used - 1
            }
            i += 1
        }
        if o.printCapabilities || o.help { return o }
        guard o.endpoint != nil else { throw .usage("no vhost-user endpoint", fix: "pass --socket-path PATH or --fd N") }
        switch (o.tapName, o.tapFds.isEmpty) {
        case (nil, true): throw .usage("no TAP device", fix: "pass --tap NAME or --tap-fd N")
        case (.some, false): throw .usage("--tap and --tap-fd are exclusive", fix: "pass one of them")
        case (nil, false):
            if !pairsGiven { o.device.queuePairs = o.tapFds.count }
            guard o.tapFds.count == o.device.queuePairs else {
                throw .usage("\(o.tapFds.count) --tap-fd for \(o.device.queuePairs) queue pairs", fix: "pass one --tap-fd per queue pair")
            }
        default: break
        }
        return o
    }

    static func parseMAC(_ text: String) throws(NetWorkerError) -> [UInt8] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else {
            throw .usage("--mac \(text) is not a MAC address", fix: "write six hex pairs, e.g. 52:54:00:12:34:56")
        }
        guard bytes[0] & 1 == 0 else { throw .usage("--mac \(text) is a multicast address", fix: "use an address whose first byte is even, e.g. 52:54:00:...") }
        return bytes
    }
}
