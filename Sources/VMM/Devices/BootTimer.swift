import Sandbox
import CShim

/// The boot-timer port: the first byte a guest writes here marks "booted", and
/// volt-vmm reports how long that took since it started. Benchmarks read that line.
final class BootTimer: PortIODevice {
    private let startNanoseconds: UInt64
    private let report: @Sendable (_ milliseconds: Double, _ value: UInt8) -> Void

    init(startNanoseconds: UInt64, report: @escaping @Sendable (Double, UInt8) -> Void) {
        self.startNanoseconds = startNanoseconds
        self.report = report
    }

    func read(offset: UInt16, into data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = 0 }
    }

    func write(offset: UInt16, data: UnsafeRawBufferPointer) {
        StartupTrace.mark("guest: boot-timer port write")
        let elapsed = volt_monotonic_ns() &- startNanoseconds
        report(Double(elapsed) / 1_000_000, data.first ?? 0)
    }
}
