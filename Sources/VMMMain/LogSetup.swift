@preconcurrency import Glibc
import ArgumentParser
import Logging

/// One-line log records on stderr: `volt-vmm: notice: message`. Quiet by default.
struct StderrLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        fputs("volt-vmm: \(event.level): \(event.message)\n", stderr)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LogSetup {
    static func logger(level: Logger.Level) -> Logger {
        Logger(label: "volt-vmm") { _ in StderrLogHandler(logLevel: level) }
    }
}
