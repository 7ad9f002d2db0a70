/// A worker's command line as one typed value: volt-vmm encodes it (`encode()`), the
/// worker decodes it (`parse`), both with this code. The shared part: the vhost-user
/// endpoint (the spec's back-end program conventions: `--socket-path` or `--fd`,
/// `--print-capabilities`), the VMM's metrics page, injected faults and the sandbox
/// options; `device` holds the rest.
///
/// Options are `--name value` or `--name=value`; a bad one is a `UsageError` naming
/// the fix. fds are numbers in the worker's fd table (`InheritedFDs` assigns them).
public struct WorkerArguments<Device: DeviceArguments>: Equatable, Sendable {
    public var endpoint: BackendEndpoint?
    /// Inherited metrics page (IPC.MetricsPage) the VMM reads the counters from.
    public var metricsFD: CInt?
    /// `--fault KIND[,K=V]` (repeatable).
    public var faults: [FaultSpec] = []
    public var sandbox = SandboxOptions()
    public var help = false
    public var printCapabilities = false
    public var device: Device

    public init(endpoint: BackendEndpoint? = nil, metricsFD: CInt? = nil, faults: [FaultSpec] = [], device: Device = Device()) {
        self.endpoint = endpoint
        self.metricsFD = metricsFD
        self.faults = faults
        self.device = device
    }

    /// The common options' help lines (each device's usage text includes them).
    public static var commonUsage: String {
        """
          --socket-path PATH   listen on PATH for one front-end connection
          --fd N               use inherited, connected socket N
          --metrics-fd N       publish counters in the inherited metrics page N
          --fault KIND[,K=V]   inject a fault (repeatable): \(FaultSpec.kinds(for: Device.faultDevice))
          --print-capabilities print the back-end's JSON capabilities and exit
          --help               this text
        \(SandboxOptions.usage)
        """
    }

    public static func parse(_ arguments: [String]) throws(UsageError) -> WorkerArguments {
        var a = WorkerArguments()
        var endpoints = 0
        var cursor = ArgumentCursor(arguments)
        while try cursor.advance() {
            switch cursor.name {
            case "--socket-path":
                let p = try cursor.value()
                guard !p.isEmpty else { throw UsageError("--socket-path is empty", fix: "give the socket file to listen on") }
                a.endpoint = .socketPath(p); endpoints += 1
            case "--fd": a.endpoint = .inheritedFd(try cursor.fd()); endpoints += 1
            case "--metrics-fd": a.metricsFD = try cursor.fd()
            case "--fault":
                let text = try cursor.value()
                do { a.faults.append(try FaultSpec.parse(text, device: Device.faultDevice)) } catch {
                    throw UsageError("--fault: \(error.description)", fix: "see --help")
                }
                if a.faults.last?.kind == .syscall { a.sandbox.faultForbiddenSyscall = true }
            case "--print-capabilities": try cursor.flag(); a.printCapabilities = true
            case "--help", "-h": try cursor.flag(); a.help = true
            default:
                if try a.sandbox.parse(&cursor) { continue }
                guard try a.device.parse(&cursor) else {
                    throw UsageError("unknown argument '\(cursor.argument)'", fix: "see --help")
                }
            }
        }
        if a.printCapabilities || a.help { return a }
        guard endpoints == 1 else {
            throw endpoints == 0 ? UsageError("no vhost-user socket", fix: "pass --socket-path PATH or --fd N")
                                 : UsageError("--socket-path and --fd given together", fix: "give only one of them")
        }
        try a.device.validate()
        return a
    }

    /// The argument vector that `parse` turns back into this value.
    public func encode() -> [String] {
        var out: [String] = []
        switch endpoint {
        case let .socketPath(p)?: out += ["--socket-path", p]
        case let .inheritedFd(fd)?: out += ["--fd", "\(fd)"]
        case nil: break
        }
        out += device.encode()
        if let metricsFD { out += ["--metrics-fd", "\(metricsFD)"] }
        for f in faults { out += ["--fault", f.text] }
        out += sandbox.encode()
        return out
    }
}

/// The device part of a worker's command line.
public protocol DeviceArguments: Equatable, Sendable {
    init()
    /// Which `--fault` kinds apply.
    static var faultDevice: FaultSpec.Device { get }
    /// Takes the option under `cursor` if it is this device's (reading its value from
    /// the cursor); false for an unknown option.
    mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool
    /// Checks the options together, once all are read.
    func validate() throws(UsageError)
    func encode() -> [String]
}

/// A bad command line: what is wrong and how to fix it.
public struct UsageError: Error, Equatable, CustomStringConvertible {
    public let what: String
    public let fix: String
    public init(_ what: String, fix: String) { self.what = what; self.fix = fix }
    public var description: String { "\(what) (fix: \(fix))" }
}

/// Walks an argument vector one option at a time: `--name value` or `--name=value`.
public struct ArgumentCursor {
    private let arguments: [String]
    private var next = 0
    /// The option being read, without any `=value`.
    public private(set) var name = ""
    /// The whole argument it came from.
    public private(set) var argument = ""
    private var inline: String?

    public init(_ arguments: [String]) { self.arguments = arguments }

    /// Moves to the next option; false at the end.
    mutating func advance() throws(UsageError) -> Bool {
        guard next < arguments.count else { return false }
        argument = arguments[next]
        next += 1
        if argument.hasPrefix("--"), let eq = argument.firstIndex(of: "=") {
            name = String(argument[..<eq])
            inline = String(argument[argument.index(after: eq)...])
        } else {
            name = argument
            inline = nil
        }
        return true
    }

    /// The option's value (`=value`, or the next argument).
    public mutating func value() throws(UsageError) -> String {
        if let inline { return inline }
        guard next < arguments.count else { throw UsageError("\(name) needs a value", fix: "write \(name) VALUE") }
        next += 1
        return arguments[next - 1]
    }

    /// A flag: no value allowed.
    public func flag() throws(UsageError) {
        if inline != nil { throw UsageError("\(name) takes no value", fix: "write just \(name)") }
    }

    public mutating func number(_ range: ClosedRange<Int>) throws(UsageError) -> Int {
        let v = try value()
        guard let n = Int(v), range.contains(n) else {
            throw UsageError("\(name) \(v) is not a number in \(range.lowerBound)...\(range.upperBound)",
                             fix: "pass a number in that range")
        }
        return n
    }

    /// A power of two in `range`.
    public mutating func powerOfTwo(_ range: ClosedRange<Int>) throws(UsageError) -> Int {
        let n = try number(range)
        guard n & (n - 1) == 0 else {
            throw UsageError("\(name) \(n) is not a power of two", fix: "pass \(range.lowerBound), \(range.lowerBound * 2), ... \(range.upperBound)")
        }
        return n
    }

    /// An inherited fd number.
    public mutating func fd() throws(UsageError) -> CInt { CInt(try number(0...Int(Int32.max))) }
}

/// The sandbox options every worker accepts.
///
///   --no-sandbox                 UNSAFE, debugging only: no namespaces, root, Landlock,
///                                capability drop or seccomp.
///   --seccomp=kill|log           kill (default) or UNSAFE log: forbidden calls only
///                                reach the kernel log (dmesg / audit type=1326).
///
/// Hidden (tests only; not in --help):
///   --fault-forbidden-syscall    on SET_OWNER, call socket(AF_INET): the worker must die with SIGSYS.
///   --probe-sandbox              after sandboxing, try to open and create files (with
///                                openat/mkdir added to the filter, so Landlock and the
///                                empty root answer), print each errno on stderr, then
///                                socket(AF_INET) (SIGSYS).
public struct SandboxOptions: Equatable, Sendable {
    public var enabled = true
    /// `--seccomp=log` instead of kill.
    public var seccompLogOnly = false
    public var faultForbiddenSyscall = false
    public var probe = false

    public init() {}

    public static let usage = """
          --seccomp=MODE       kill (default), or log: UNSAFE, forbidden calls are only logged (dmesg)
          --no-sandbox         UNSAFE, debugging only: run without namespaces, Landlock, seccomp
        """

    /// Takes the option under `cursor` if it is a sandbox option.
    mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool {
        switch cursor.name {
        case "--no-sandbox": try cursor.flag(); enabled = false
        case "--seccomp":
            let v = try cursor.value()
            guard v == "kill" || v == "log" else { throw UsageError("--seccomp \(v)", fix: "use --seccomp=kill or --seccomp=log") }
            seccompLogOnly = v == "log"
        case "--fault-forbidden-syscall": try cursor.flag(); faultForbiddenSyscall = true
        case "--probe-sandbox": try cursor.flag(); probe = true
        default: return false
        }
        return true
    }

    /// `--fault-forbidden-syscall` comes from a `syscall` fault, which is encoded itself.
    func encode() -> [String] {
        (enabled ? [] : ["--no-sandbox"]) + (seccompLogOnly ? ["--seccomp=log"] : []) + (probe ? ["--probe-sandbox"] : [])
    }
}

/// The fds a spawned worker inherits, numbered as it sees them: the vhost-user socket
/// is fd 3, the others follow in the order they are added.
public struct InheritedFDs: Equatable, Sendable {
    public static let socket: CInt = 3
    /// Parent-side fds after the socket, in child order (child fd 4, 5, ...).
    public private(set) var passed: [CInt] = []

    public init() {}

    /// Adds a parent fd; returns the number the worker will see it as.
    public mutating func pass(_ fd: CInt) -> CInt {
        passed.append(fd)
        return Self.socket + CInt(passed.count)
    }
}
