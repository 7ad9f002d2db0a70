import Glibc
import IPC

/// A device's own counters: an enum whose cases, in order, are its counters. The name
/// the VMM reads is the case name in snake case (`bytesRead` -> "bytes_read").
public protocol DeviceCounter: CaseIterable, RawRepresentable where RawValue == Int {}

extension DeviceCounter {
    public static var names: [String] { allCases.map { snakeCase(String(describing: $0)) } }
}

/// "requestsGetId" -> "requests_get_id".
func snakeCase(_ name: String) -> String {
    var out = ""
    for c in name {
        if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
    }
    return out
}

/// One queue thread's counters: the framework's (kicks, interrupts, ...) then the
/// device's (by `DeviceCounter` index), plain integers in storage of their own, owned
/// by the thread that counts (under its lock): a count on the data path is one add to
/// memory no other thread touches. `CounterPublisher` adds what changed to the VMM's
/// metrics page after each turn of the thread's loop.
public final class Counters {
    public static let frameworkNames = ["kicks", "interrupts", "errors_broken_ring", "resubmitted", "faults_injected"]
    @usableFromInline static let frameworkCount = 5

    @usableFromInline let values: UnsafeMutablePointer<UInt64>
    public let count: Int

    public init(deviceCount: Int) {
        precondition(Self.frameworkNames.count == Self.frameworkCount)
        count = Self.frameworkCount + deviceCount
        values = .allocate(capacity: count)
        values.initialize(repeating: 0, count: count)
    }

    deinit { values.deallocate() }

    @inlinable
    public func add<C: DeviceCounter>(_ counter: C, _ n: UInt64 = 1) {
        values[Self.frameworkCount + counter.rawValue] &+= n
    }

    @inlinable
    public subscript<C: DeviceCounter>(_ counter: C) -> UInt64 { values[Self.frameworkCount + counter.rawValue] }

    /// Kick eventfd wake-ups.
    public var kicks: UInt64 { get { values[0] } set { values[0] = newValue } }
    /// Used-buffer notifications sent (call eventfd writes).
    public var interrupts: UInt64 { get { values[1] } set { values[1] = newValue } }
    /// Rings found broken (or unusable at setup) and stopped.
    public var brokenRings: UInt64 { get { values[2] } set { values[2] = newValue } }
    /// Requests a previous worker left in flight, resubmitted from the inflight buffer.
    public var resubmitted: UInt64 { get { values[3] } set { values[3] = newValue } }
    /// Faults injected with `--fault`.
    public var faultsInjected: UInt64 { get { values[4] } set { values[4] = newValue } }
}

/// Publishes counters into a metrics page (IPC.MetricsPage, a memfd the VMM reads): the
/// framework's names, then the device's. Each thread adds its deltas since its last
/// publish with relaxed atomic adds.
public final class CounterPublisher: @unchecked Sendable {
    // @unchecked: immutable after init; the page counters are atomic.
    public let page: MetricsPage
    private let counters: [MetricsPage.Counter]

    public init(page: MetricsPage, deviceNames: [String]) throws {
        self.page = page
        counters = try page.register(Counters.frameworkNames + deviceNames)
    }

    /// Adds `now - last` to the page, then makes `last` equal to `now`: one comparison of
    /// the two blocks when nothing changed, no allocation.
    func publish(_ now: Counters, since last: Counters) {
        let n = min(now.count, last.count, counters.count)
        guard memcmp(now.values, last.values, n * 8) != 0 else { return }
        for i in 0..<n where now.values[i] != last.values[i] {
            counters[i].add(now.values[i] &- last.values[i])
            last.values[i] = now.values[i]
        }
    }

    /// Every counter by name, as the page holds them (all threads summed).
    public func snapshot() -> [String: UInt64] {
        Dictionary(page.snapshot().map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// One line of `name=value` pairs, in registration order (for the exit log line).
    public var line: String {
        page.snapshot().map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }
}
