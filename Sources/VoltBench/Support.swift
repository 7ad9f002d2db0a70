import CShim
import Foundation
import Glibc

/// Monotonic clock in nanoseconds.
@inline(__always) func now() -> UInt64 { volt_monotonic_ns() }

/// Thrown for anything that stops a benchmark; the message says what to fix.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Things to undo on every exit path: normal return, thrown error (callers `defer`
/// `Cleanup.shared.run()`), and SIGINT / SIGTERM / SIGHUP (handled on a dispatch queue,
/// so the undo runs in normal context, then the process exits 130).
final class Cleanup: @unchecked Sendable {
    static let shared = Cleanup()
    private let lock = NSLock()
    private var actions: [(id: Int, action: () -> Void)] = []
    private var nextID = 0
    private var sources: [DispatchSourceSignal] = []

    @discardableResult
    func add(_ action: @escaping () -> Void) -> Int {
        lock.withLock { nextID += 1; actions.append((nextID, action)); return nextID }
    }

    /// Runs one action now (and forgets it).
    func run(_ id: Int) {
        let a = lock.withLock { () -> (() -> Void)? in
            guard let i = actions.firstIndex(where: { $0.id == id }) else { return nil }
            return actions.remove(at: i).action
        }
        a?()
    }

    /// Runs every pending action, newest first.
    func runAll() {
        while let a = lock.withLock({ actions.popLast()?.action }) { a() }
    }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                fputs("volt-bench: signal \(sig), cleaning up\n", stderr)
                runAll()
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// A spawned helper (worker, daemon, `ip`, volt-vmm), output to a log file or to the given
/// pipes. `stop()` sends SIGTERM, then SIGKILL after 3 s.
final class Child {
    let process = Process()
    let name: String

    convenience init(_ path: String, _ arguments: [String], log: String) throws {
        FileManager.default.createFile(atPath: log, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: log) else { throw BenchError("cannot write \(log)") }
        try self.init(path, arguments, standardOutput: handle, standardError: handle)
    }

    /// `standardOutput` and `standardError`: a FileHandle or a Pipe, as Process takes them.
    init(_ path: String, _ arguments: [String], standardOutput: Any, standardError: Any) throws {
        name = (path as NSString).lastPathComponent
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = standardOutput
        process.standardError = standardError
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The command line for a worker binary: as is, or behind `$VOLT_BENCH_WRAP` (a
/// space-separated prefix, e.g. "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p")
/// for profiling. Returns the executable and the arguments before the worker's own.
func workerCommand(_ worker: String) -> (String, [String]) {
    guard let wrap = ProcessInfo.processInfo.environment["VOLT_BENCH_WRAP"], !wrap.isEmpty else { return (worker, []) }
    var words = wrap.split(separator: " ").map(String.init)
    var exe = words.removeFirst()
    if !exe.hasPrefix("/") {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        exe = path.split(separator: ":").map { "\($0)/\(exe)" }.first { access($0, X_OK) == 0 } ?? exe
    }
    return (exe, words + [worker])
}

/// Runs a command to completion; throws with its output if it fails.
@discardableResult
func runCommand(_ path: String, _ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let out = String(decoding: data, as: UTF8.self)
    guard p.terminationStatus == 0 else {
        throw BenchError("\(([path] + arguments).joined(separator: " ")) failed (\(p.terminationStatus)): \(out)")
    }
    return out
}

/// Waits until `path` is a listening UNIX socket (or the child died / time ran out).
func waitForSocket(_ path: String, child: Child, timeout: Double = 30) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var st = stat()
    while stat(path, &st) != 0 || st.st_mode & S_IFMT != S_IFSOCK {
        guard child.process.isRunning else { throw BenchError("\(child.name) exited before listening on \(path)") }
        guard Date() < deadline else { throw BenchError("\(child.name) did not create \(path) in \(timeout) s") }
        usleep(10_000)
    }
}

/// A fresh folder under /tmp for this run's sockets and logs, removed by `Cleanup`.
func makeWorkDirectory() throws -> String {
    var template = Array("/tmp/volt-bench-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw BenchError("mkdtemp failed: errno \(errno)") }
    let work = String(cString: p)
    Cleanup.shared.add { try? FileManager.default.removeItem(atPath: work) }
    return work
}

/// The folder holding this executable (the worker binaries are built next to it).
func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return "." }
    return (String(cString: buffer) as NSString).deletingLastPathComponent
}

/// Starts `count` threads running `body(index)` and waits for all of them.
func runThreads(_ count: Int, name: String, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    var threads: [Thread] = []
    for i in 0..<count {
        group.enter()
        let t = Thread { body(i); group.leave() }
        t.name = "\(name)-\(i)"
        t.stackSize = 1 << 20
        threads.append(t)
    }
    for t in threads { t.start() }
    group.wait()
}

/// One backend's result for one row: throughput and, for block rows, per-request latencies.
struct Measurement {
    var operations: Int = 0
    var bytes: UInt64 = 0
    var nanoseconds: UInt64 = 1
    /// Per-request latency, ns (submission to completion as the driver sees it).
    var latencies: [UInt64] = []

    var seconds: Double { Double(nanoseconds) / 1e9 }
    var opsPerSecond: Double { Double(operations) / seconds }
    var mibPerSecond: Double { Double(bytes) / seconds / 1_048_576 }
    var gbitPerSecond: Double { Double(bytes) * 8 / seconds / 1e9 }
    var meanLatencyUs: Double {
        latencies.isEmpty ? .nan : Double(latencies.reduce(0, +)) / Double(latencies.count) / 1000
    }
    var p99LatencyUs: Double {
        latencies.isEmpty ? .nan : Double(percentile(latencies.sorted(), 0.99)) / 1000
    }

    /// Adds a later, separate run of the same cell (times add up).
    mutating func append(_ other: Measurement) {
        operations += other.operations
        bytes += other.bytes
        nanoseconds = (operations == other.operations ? 0 : nanoseconds) + other.nanoseconds
        latencies += other.latencies
    }

    /// Adds a concurrent part of the same run (threads: the longest time counts).
    mutating func merge(_ other: Measurement) {
        operations += other.operations
        bytes += other.bytes
        nanoseconds = max(nanoseconds, other.nanoseconds)
        latencies += other.latencies
    }
}

/// The nearest-rank percentile `p` (0...1) of `sorted` (ascending, not empty): the
/// smallest value at or above which a fraction `p` of the values lie.
func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
}

/// A Markdown table with padded columns (pastes into a README as is).
struct Table {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { i, c in
                i == 0 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.enumerated().map { i, w in
            i == 0 ? ":" + String(repeating: "-", count: w + 1) : String(repeating: "-", count: w + 1) + ":"
        }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

func format(_ v: Double, _ digits: Int = 0) -> String {
    v.isNaN ? "–" : String(format: "%.\(digits)f", v)
}

/// A thousands-separated integer rate ("123,456").
func formatCount(_ v: Double) -> String {
    guard v.isFinite else { return "–" }
    let n = Int(v.rounded())
    let s = String(n)
    var out = ""
    for (i, ch) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return String(out.reversed())
}

/// Date, kernel, CPU count and load: printed above every table.
func machineSummary() -> String {
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    let cpuModel = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "?"
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
        .split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    let date = ISO8601DateFormatter().string(from: Date())
    return "\(date), Linux \(release), \(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(cpuModel)), load \(load)"
}

