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

/// One queue thread's counters: the framework's (named fields) and the device's (by
/// `DeviceCounter` index). Plain integers, owned by the thread that counts (under its
/// lock): the data path never touches shared memory for a count. `CounterPublisher`
/// adds what changed to the VMM's metrics page after each event-loop turn.
public struct Counters: Equatable {
    /// Kick eventfd wake-ups.
    public var kicks: UInt64 = 0
    /// Used-buffer notifications sent (call eventfd writes).
    public var interrupts: UInt64 = 0
    /// Rings found broken (or unusable at setup) and stopped.
    public var brokenRings: UInt64 = 0
    /// Requests a previous worker left in flight, resubmitted from the inflight buffer.
    public var resubmitted: UInt64 = 0
    /// Faults injected with `--fault`.
    public var faultsInjected: UInt64 = 0
    public var device: [UInt64]

    public static let frameworkNames = ["kicks", "interrupts", "errors_broken_ring", "resubmitted", "faults_injected"]

    public init(deviceCount: Int) { device = Array(repeating: 0, count: deviceCount) }

    @inlinable
    public mutating func add<C: DeviceCounter>(_ counter: C, _ n: UInt64 = 1) {
        device[counter.rawValue] &+= n
    }

    @inlinable
    public subscript<C: DeviceCounter>(_ counter: C) -> UInt64 { device[counter.rawValue] }

    var framework: [UInt64] { [kicks, interrupts, brokenRings, resubmitted, faultsInjected] }
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

    /// Adds `now - last` to the page, then sets `last = now`. No allocation.
    func publish(_ now: Counters, since last: inout Counters) {
        guard now != last else { return }
        add(0, now.kicks, last.kicks)
        add(1, now.interrupts, last.interrupts)
        add(2, now.brokenRings, last.brokenRings)
        add(3, now.resubmitted, last.resubmitted)
        add(4, now.faultsInjected, last.faultsInjected)
        let base = Counters.frameworkNames.count
        for i in now.device.indices where i < last.device.count {
            add(base + i, now.device[i], last.device[i])
        }
        last = now
    }

    private func add(_ index: Int, _ now: UInt64, _ last: UInt64) {
        if now != last, index < counters.count { counters[index].add(now &- last) }
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
