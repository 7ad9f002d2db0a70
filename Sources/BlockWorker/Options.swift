import VirtioCore
import IPC
import Sandbox

/// Command line, parsed by hand.
///
/// swift-argument-parser was measured for this (Swift 6.3.1, release build, trivial
/// program with 4 options): +3.7 MB binary, it links FoundationEssentials, RSS 12.5 vs
/// 7.0 MiB (PSS 3.5 vs 1.6 MiB), and 11 ms vs 5 ms from exec to exit. One such worker
/// runs per disk per VM, so the ~20 options below are parsed without it.
struct Options: Equatable {
    var endpoint: BackendEndpoint?
    var imagePath: String?
    var imageFD: CInt?
    /// Inherited metrics page (IPC.MetricsPage) the VMM reads the counters from.
    var metricsFD: CInt?
    var readOnly = false
    var direct = false
    var numQueues = 1
    var queueSize = 1024
    var serial: String?
    var printCapabilities = false
    var help = false
    var sandbox = SandboxFlags()
    /// `--fault KIND[,params]` (repeatable): injected faults, for fault tests.
    var faults: [FaultSpec] = []

    static let usage = """
        usage: volt-blk-worker (--socket-path PATH | --fd N) (--path IMG | --image-fd N) [options]
               volt-blk-worker --print-capabilities

        vhost-user-blk back-end serving a raw disk image.

          --socket-path PATH   listen on PATH for one front-end connection
          --fd N               use inherited, connected socket N
          --path IMG           raw image file or block device (aliases: --image, --blk-file)
          --image-fd N         use inherited image fd N (opened by the caller)
          --metrics-fd N       publish counters in the inherited metrics page N
          --readonly           read-only disk (alias: --read-only)
          --direct             O_DIRECT I/O (bypass the host page cache)
          --num-queues N       request queues, 1-64 (default 1)
          --queue-size N       largest queue size, power of two 4-1024 (default 1024)
          --serial S           device ID for GET_ID, at most 20 ASCII bytes (default: from the image)
          --fault KIND[,K=V]   inject a fault (repeatable): crash,after=N | delay,ms=D |
                               eio,rate=P | eio,sectors=A-B | syscall
          --print-capabilities print the back-end's JSON capabilities and exit
          --help               this text
        \(SandboxFlags.usage)

        """

    /// Capabilities per the vhost-user spec's "vhost-user-blk" back-end conventions.
    static let capabilities = #"{"type": "block", "features": ["read-only", "blk-file"]}"#

    /// A bad argument, with the fix in the message.
    struct UsageError: Error, Equatable, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var o = Options()
        var i = 0
        var endpoints = 0
        var images = 0
        while i < arguments.count {
            let arg = arguments[i]
            let name: String
            var inline: String? = nil
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                inline = String(arg[arg.index(after: eq)...])
            } else {
                name = arg
            }
            func value() throws(UsageError) -> String {
                if let inline { return inline }
                i += 1
                guard i < arguments.count else { throw UsageError("\(name) needs a value: \(name) VALUE") }
                return arguments[i]
            }
            func flag() throws(UsageError) {
                if inline != nil { throw UsageError("\(name) takes no value: write just \(name)") }
            }
            func number(_ range: ClosedRange<Int>) throws(UsageError) -> Int {
                let v = try value()
                guard let n = Int(v), range.contains(n) else {
                    throw UsageError("\(name) \(v): expected a number in \(range.lowerBound)...\(range.upperBound)")
                }
                return n
            }
            switch name {
            case "--socket-path":
                let p = try value()
                guard !p.isEmpty else { throw UsageError("--socket-path is empty: give the socket file to listen on") }
                o.endpoint = .socketPath(p); endpoints += 1
            case "--fd":
                o.endpoint = .inheritedFd(CInt(try number(0...Int(Int32.max)))); endpoints += 1
            case "--path", "--image", "--blk-file":
                let p = try value()
                guard !p.isEmpty else { throw UsageError("\(name) is empty: give the raw image's path") }
                o.imagePath = p; images += 1
            case "--image-fd":
                o.imageFD = CInt(try number(0...Int(Int32.max))); images += 1
            case "--metrics-fd": o.metricsFD = CInt(try number(0...Int(Int32.max)))
            case "--readonly", "--read-only": try flag(); o.readOnly = true
            case "--direct": try flag(); o.direct = true
            case "--num-queues": o.numQueues = try number(1...64)
            case "--queue-size":
                let n = try number(4...1024)
                guard n & (n - 1) == 0 else { throw UsageError("--queue-size \(n): use a power of two (4, 8, ... 1024)") }
                o.queueSize = n
            case "--serial":
                let s = try value()
                guard s.utf8.count <= BlockLayout.idBytes, s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
                    throw UsageError("--serial \(s): use at most 20 printable ASCII characters")
                }
                o.serial = s
            case "--fault":
                let text = try value()
                do { o.faults.append(try FaultSpec.parse(text, device: .block)) } catch { throw UsageError("--fault: \(error)") }
                if o.faults.last?.kind == .syscall { o.sandbox.faultForbiddenSyscall = true }
            case "--print-capabilities": try flag(); o.printCapabilities = true
            case "--help", "-h": try flag(); o.help = true
            default:
                let used: Int?
                do { used = try o.sandbox.parse(name, inline: inline, next: i + 1 < arguments.count ? arguments[i + 1] : nil) }
                catch { throw UsageError(error.description) }
                guard let used else { throw UsageError("unknown argument \(arg): see --help") }
                i += used - 1
            }
            i += 1
        }
        if o.printCapabilities || o.help { return o }
        guard endpoints == 1 else {
            throw UsageError(endpoints == 0 ? "no vhost-user socket: pass --socket-path PATH or --fd N"
                                            : "give only one of --socket-path and --fd")
        }
        guard images == 1 else {
            throw UsageError(images == 0 ? "no disk image: pass --path IMG or --image-fd N"
                                         : "give only one of --path/--image/--blk-file and --image-fd")
        }
        return o
    }
}
