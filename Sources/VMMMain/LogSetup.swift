@preconcurrency import Glibc
import ArgumentParser
import Logging
import VMM

/// One-line log records: `volt-vmm: notice: message` on stderr, or where a Firecracker
/// logger config (`--log-path`, `PUT /logger`) points, with its options. Quiet by default.
struct LineLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    /// Where lines go (stderr unless a log file was given); written whole, unbuffered.
    let fd: Int32
    var showLevel = true
    var showOrigin = false

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "volt-vmm: "
        if showLevel { line += "\(event.level): " }
        if showOrigin { line += "\(event.file.split(separator: "/").last ?? ""):\(event.line): " }
        line += "\(event.message)\n"
        _ = line.withCString { write(fd, $0, strlen($0)) }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LogSetup {
    static func logger(level: Logger.Level) -> Logger {
        Logger(label: "volt-vmm") { _ in LineLogHandler(logLevel: level, fd: 2) }
    }

    /// Firecracker's logger options: level names (Error, Warning, Info, Debug, Trace, Off;
    /// any case), a log file or named pipe (opened as `OutputFile` does: a line that does not
/// fit a full pipe is dropped), and what each line shows.
    static func logger(_ config: LoggerConfig?, fallback: Logger.Level) throws -> Logger {
        guard let config else { return logger(level: fallback) }
        let level = firecrackerLevel(config.level) ?? fallback
        var fd: Int32 = 2
        if let path = config.logPath {
            switch OutputFile.open(path) {
            case let .success(opened): fd = opened
            case let .failure(errno): throw APIFault("log_path \(path): \(errno) — give a file or named pipe volt-vmm can write")
            }
        }
        let handler = LineLogHandler(logLevel: level, fd: fd, showLevel: config.showLevel, showOrigin: config.showLogOrigin)
        return Logger(label: "volt-vmm") { _ in handler }
    }

    /// "Off" is above every level swift-log has: only critical lines remain.
    static func firecrackerLevel(_ name: String) -> Logger.Level? {
        switch name.lowercased() {
        case "trace": return .trace
        case "debug": return .debug
        case "info": return .info
        case "warning", "warn": return .warning
        case "error": return .error
        case "off": return .critical
        default: return nil
        }
    }
}
