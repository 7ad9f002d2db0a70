import FoundationEssentials
import Glibc
import SystemPackage

/// Progress lines for `kernel build` on stderr: stage names, and a compile-unit counter that
/// rewrites one line on a terminal and prints every `logEvery` units (plus 30 s heartbeats) otherwise.
public final class BuildProgress {
    private let interactive: Bool
    private let logEvery: Int
    private var lastPrinted = Date.distantPast
    private var lastCountPrinted = 0

    public init(interactive: Bool = isatty(STDERR_FILENO) == 1, logEvery: Int = 100) {
        self.interactive = interactive
        self.logEvery = logEvery
    }

    func stage(_ number: Int, of total: Int, _ text: String) {
        emit("[stage \(number)/\(total)] \(text)")
    }

    func note(_ text: String) { emit("  \(text)") }

    func warn(_ text: String) { emit("warning: \(text)") }

    func compiling(units: Int, estimate: Int, current: Substring) {
        let percent = min(99, units * 100 / max(estimate, 1))
        let text = "[stage 3/4] compiling: \(units) units (~\(percent)% of ~\(max(estimate, units))) \(current)"
        if interactive {
            write("\r\u{1B}[K\(text)")
        } else if units - lastCountPrinted >= logEvery || Date().timeIntervalSince(lastPrinted) >= 30 {
            emit(text)
            lastCountPrinted = units
            lastPrinted = Date()
        }
    }

    func finishCompiling(units: Int, seconds: Double) {
        if interactive { write("\r\u{1B}[K") }
        emit("[stage 3/4] compiled \(units) units in \(Self.duration(seconds))")
    }

    public static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return whole >= 60 ? "\(whole / 60)m\(whole % 60 < 10 ? "0" : "")\(whole % 60)s" : "\(whole)s"
    }

    private func emit(_ line: String) { write(line + "\n") }

    /// Progress goes to stderr unbuffered, as it happens; a failed write is not worth failing a build.
    private func write(_ text: String) {
        _ = try? FileDescriptor.standardError.writeAll(text.utf8)
    }
}
