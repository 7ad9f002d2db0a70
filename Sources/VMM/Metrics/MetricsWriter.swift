import CShim
import Glibc
import IPC
import Synchronization
import SystemPackage

/// `--metrics PATH`: one JSON object per line, every interval and once more at exit:
/// `{"uptime_ms":..,"final":false,"vmm":{...},"devices":{"disk0":{...}}}`. Device
/// counters come from each worker's metrics page; names a worker wrote are escaped.
final class MetricsWriter: @unchecked Sendable {
    private let fd: FileDescriptor
    private let vmm: VMMCounters
    private let devices: [(name: String, page: MetricsPage)]
    /// Counters the VMM keeps about a device (e.g. its worker's restarts), by device name.
    private let extras: [String: @Sendable () -> [(name: String, value: UInt64)]]
    private let startNanoseconds: UInt64
    /// Lines come from the metrics thread and from the API (`FlushMetrics`): one at a time.
    private let writing = Condition()

    init(path: String, vmm: VMMCounters, devices: [(name: String, page: MetricsPage)],
         extras: [String: @Sendable () -> [(name: String, value: UInt64)]] = [:], startNanoseconds: UInt64) throws {
        // Appended to, never truncated; a named pipe without a reader opens, and a line
        // that does not fit a full one is dropped (Firecracker's metrics file semantics).
        switch OutputFile.open(path) {
        case let .success(raw): fd = FileDescriptor(rawValue: raw)
        case let .failure(errno): throw MetricsError.cannotOpen(path: path, errno)
        }
        self.vmm = vmm
        self.devices = devices
        self.extras = extras
        self.startNanoseconds = startNanoseconds
    }

    deinit { try? fd.close() }

    func writeLine(final: Bool) {
        let uptime = (volt_monotonic_ns() &- startNanoseconds) / 1_000_000
        var line = "{\"uptime_ms\":\(uptime),\"final\":\(final),\"vmm\":\(Self.object(vmm.snapshot)),\"devices\":{"
        line += devices.map { device in
            "\(Self.quote(device.name)):\(Self.object(device.page.snapshot() + (extras[device.name]?() ?? [])))"
        }.joined(separator: ",")
        line += "}}\n"
        writing.withLock { _ = try? fd.writeAll(line.utf8) }
    }

    /// Writes every `intervalMilliseconds` until `lifecycle` finishes (the final line is
    /// written by the caller after the VM has stopped).
    func run(intervalMilliseconds: Int, lifecycle: Lifecycle) {
        var elapsed = 0
        while !lifecycle.isFinished {
            usleep(50_000)
            elapsed += 50
            if elapsed >= intervalMilliseconds {
                elapsed = 0
                writeLine(final: false)
            }
        }
    }

    static func object(_ pairs: [(name: String, value: UInt64)]) -> String {
        "{" + pairs.map { "\(quote($0.name)):\($0.value)" }.joined(separator: ",") + "}"
    }

    static func quote(_ s: String) -> String { JSONText.quote(s) }
}
