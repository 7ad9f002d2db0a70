import Glibc
import Synchronization

/// One `--fault KIND[,key=value...]` for a worker (volt-vmm's `--fault DEVICE:KIND...`
/// minus the device). Parsed by volt-vmm (to reject bad ones before spawning) and again
/// by the worker that injects it.
public struct FaultSpec: Equatable, Sendable {
    public enum Device: String, Sendable { case block = "blk", net, entropy = "rng", vsock }

    public enum Kind: Equatable, Sendable {
        /// Exit abruptly (`_exit(99)`) after `after` completed requests/packets.
        case crash(after: UInt64)
        /// blk: every request completes `ms` milliseconds late.
        case delay(ms: Int)
        /// blk: VIRTIO_BLK_S_IOERR for `percent` % of requests.
        case eioRate(percent: Int)
        /// blk: VIRTIO_BLK_S_IOERR for requests touching sectors first...last.
        case eioSectors(ClosedRange<UInt64>)
        /// net: drop `percent` % of frames (TX and RX).
        case drop(percent: Int)
        /// net: flip one byte after the virtio-net header in `percent` % of frames.
        case corrupt(percent: Int)
        /// rng: `percent` % of requests are filled with zeros instead of random bytes.
        case zero(percent: Int)
        /// The worker calls socket() after sandboxing (on SET_OWNER): SIGSYS.
        case syscall
    }

    public var kind: Kind
    /// Seeds the percentage PRNG (volt-vmm passes the device index).
    public var seed: UInt64 = 0

    public init(kind: Kind, seed: UInt64 = 0) {
        self.kind = kind
        self.seed = seed
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
        public init(_ d: String) { description = d }
    }

    public static let usage = """
        blk: \(kinds(for: .block)); net: \(kinds(for: .net)); rng: \(kinds(for: .entropy)) (optional seed=N)
        """

    /// The kinds a device's worker injects, as `--help` lists them.
    public static func kinds(for device: Device) -> String {
        switch device {
        case .block: return "crash,after=N | delay,ms=D | eio,rate=P | eio,sectors=A-B | syscall"
        case .net: return "crash,after=N | drop,percent=P | corrupt,percent=P | syscall"
        case .entropy: return "crash,after=N | delay,ms=D | zero,percent=P | syscall"
        case .vsock: return "crash,after=N | syscall"
        }
    }

    /// The text `parse` reads back as this fault (what volt-vmm passes to the worker).
    public var text: String {
        let base: String
        switch kind {
        case let .crash(after): base = "crash,after=\(after)"
        case let .delay(ms): base = "delay,ms=\(ms)"
        case let .eioRate(p): base = "eio,rate=\(p)"
        case let .eioSectors(r): base = "eio,sectors=\(r.lowerBound)-\(r.upperBound)"
        case let .drop(p): base = "drop,percent=\(p)"
        case let .corrupt(p): base = "corrupt,percent=\(p)"
        case let .zero(p): base = "zero,percent=\(p)"
        case .syscall: base = "syscall"
        }
        return seed == 0 ? base : base + ",seed=\(seed)"
    }

    /// Parses `KIND[,key=value...]` for a `device` worker.
    public static func parse(_ text: String, device: Device) throws(ParseError) -> FaultSpec {
        func bad(_ why: String) -> ParseError { ParseError("fault '\(text)': \(why) (\(device.rawValue) faults: \(usage))") }
        var parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let kindName = parts.removeFirst()
        var values: [String: String] = [:]
        for part in parts {
            guard let eq = part.firstIndex(of: "="), eq != part.startIndex else { throw bad("'\(part)' is not key=value") }
            let key = String(part[..<eq])
            guard values[key] == nil else { throw bad("'\(key)' given twice") }
            values[key] = String(part[part.index(after: eq)...])
        }
        func number(_ key: String, _ range: ClosedRange<UInt64>) throws(ParseError) -> UInt64 {
            guard let v = values.removeValue(forKey: key) else { throw bad("\(kindName) needs \(key)=") }
            guard let n = UInt64(v), range.contains(n) else {
                throw bad("\(key)=\(v) must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        var seed: UInt64 = 0
        if values["seed"] != nil { seed = try number("seed", 0...UInt64.max) }
        let kind: Kind
        switch (kindName, device) {
        case ("crash", _): kind = .crash(after: try number("after", 0...UInt64(UInt32.max)))
        case ("syscall", _): kind = .syscall
        case ("delay", .block), ("delay", .entropy): kind = .delay(ms: Int(try number("ms", 1...60_000)))
        case ("eio", .block):
            if let range = values.removeValue(forKey: "sectors") {
                guard values["rate"] == nil else { throw bad("give rate= or sectors=, not both") }
                let ends = range.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count == 2, let a = UInt64(ends[0]), let b = UInt64(ends[1]), a <= b else {
                    throw bad("sectors=\(range) must be FIRST-LAST with FIRST <= LAST")
                }
                kind = .eioSectors(a...b)
            } else if values["rate"] != nil {
                kind = .eioRate(percent: Int(try number("rate", 0...100)))
            } else {
                throw bad("eio needs rate=P or sectors=A-B")
            }
        case ("drop", .net): kind = .drop(percent: Int(try number("percent", 0...100)))
        case ("corrupt", .net): kind = .corrupt(percent: Int(try number("percent", 0...100)))
        case ("zero", .entropy): kind = .zero(percent: Int(try number("percent", 0...100)))
        default: throw bad("unknown kind '\(kindName)'")
        }
        if let extra = values.keys.sorted().first { throw bad("unknown key '\(extra)' for \(kindName)") }
        return FaultSpec(kind: kind, seed: seed)
    }
}

/// A worker's active faults, shared by its queue threads: decides which request or frame
/// to hit, counts what it injected, and ends the process for `crash`.
public final class FaultInjector: Sendable {
    public let specs: [FaultSpec]
    private let draws = Atomic<UInt64>(0)
    private let completed = Atomic<UInt64>(0)
    @usableFromInline let crashAfter: UInt64?
    private let seed: UInt64

    public init(_ specs: [FaultSpec]) {
        self.specs = specs
        var after: UInt64?
        for case let .crash(n) in specs.map(\.kind) { after = min(after ?? n, n) }
        crashAfter = after
        seed = specs.first?.seed ?? 0
    }

    public var isEmpty: Bool { specs.isEmpty }
    public var forbiddenSyscall: Bool { specs.contains { $0.kind == .syscall } }

    public var delayMilliseconds: Int? {
        for case let .delay(ms) in specs.map(\.kind) { return ms }
        return nil
    }

    /// True for `percent` % of calls: splitmix64 over a shared draw counter, so the
    /// sequence is the same on every run with the same seed.
    public func roll(_ percent: Int) -> Bool {
        if percent <= 0 { return false }
        if percent >= 100 { return true }
        var z = seed &+ draws.wrappingAdd(1, ordering: .relaxed).newValue &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z % 100 < UInt64(percent)
    }

    /// Whether a blk request on sectors `first..<first+count` must fail with IOERR.
    public func failsIO(firstSector: UInt64, sectors: UInt64) -> Bool {
        for spec in specs {
            switch spec.kind {
            case let .eioSectors(r) where sectors > 0 && firstSector <= r.upperBound && firstSector &+ sectors > r.lowerBound:
                return true
            case let .eioRate(p) where roll(p): return true
            default: continue
            }
        }
        return false
    }

    /// Percentage for `drop` / `corrupt` (0 if not set).
    public var dropPercent: Int {
        for case let .drop(p) in specs.map(\.kind) { return p }
        return 0
    }
    public var corruptPercent: Int {
        for case let .corrupt(p) in specs.map(\.kind) { return p }
        return 0
    }
    public var zeroPercent: Int {
        for case let .zero(p) in specs.map(\.kind) { return p }
        return 0
    }

    /// `count` requests/packets completed; past `crash,after=N` the process exits
    /// abruptly (no flush, no cleanup: the VMM sees a worker death).
    /// Inlined: on a data path without `crash` faults this is one test per frame.
    @inlinable
    public func completed(_ count: Int, onCrash: () -> Void = {}) {
        guard crashAfter != nil, count > 0 else { return }
        countCompleted(count, onCrash: onCrash)
    }

    @usableFromInline
    func countCompleted(_ count: Int, onCrash: () -> Void) {
        guard let crashAfter else { return }
        let total = completed.wrappingAdd(UInt64(count), ordering: .relaxed).newValue
        if total >= crashAfter {
            onCrash()
            fputs("fault injected: crash after \(total) completed (crash,after=\(crashAfter))\n", stderr)
            _exit(99)
        }
    }

    /// Sleeps `ms` milliseconds: sigtimedwait on an empty signal set, which only times
    /// out (rt_sigtimedwait is in every worker's filter for the signal thread; nanosleep
    /// and poll are not).
    public static func sleep(ms: Int) {
        var left = ms
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var none = sigset_t()
        sigemptyset(&none)
        while left > 0 {
            var wait = timespec(tv_sec: left / 1000, tv_nsec: (left % 1000) * 1_000_000)
            _ = sigtimedwait(&none, nil, &wait)
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1_000_000
            left = ms - elapsed
        }
    }
}
