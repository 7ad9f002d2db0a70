import CShim
import Glibc
import IPC
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

    init(path: String, vmm: VMMCounters, devices: [(name: String, page: MetricsPage)],
         extras: [String: @Sendable () -> [(name: String, value: UInt64)]] = [:], startNanoseconds: UInt64) throws {
        do {
            fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead])
        } catch {
            throw MetricsError.cannotOpen(path: path, error as? Errno ?? .ioError)
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
        _ = try? fd.writeAll(line.utf8)
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

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
