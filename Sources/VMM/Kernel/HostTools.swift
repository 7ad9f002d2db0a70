import FoundationEssentials
import Glibc
import SystemPackage

/// Runs host tools (tar, make, sha256sum) for the kernel build. Only used by `volt-vmm kernel ...`
/// commands, never on a VM's path.
enum HostTools {
    /// Debian package that provides each tool the kernel build runs, for "apt-get install" hints.
    static let packages: [String: String] = [
        "make": "make", "gcc": "gcc", "tar": "tar", "xz": "xz-utils", "gzip": "gzip",
        "flex": "flex", "bison": "bison", "bc": "bc", "perl": "perl", "cpio": "cpio",
        "sha256sum": "coreutils", "openssl": "libssl-dev",
    ]

    /// The absolute path of `tool` on $PATH, or nil.
    static func which(_ tool: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func require(_ tool: String) throws -> String {
        guard let path = which(tool) else {
            throw KernelError.missingTool(tool: tool, package: packages[tool] ?? tool)
        }
        return path
    }

    /// Runs `tool args` in `directory`, appending everything it prints (stdout and stderr, merged)
    /// to `log` and handing each complete line to `onLine`. Returns the exit status (the signal
    /// number for a tool killed by a signal).
    @discardableResult
    static func run(
        _ tool: String, _ arguments: [String], in directory: String? = nil,
        environment: [String: String]? = nil, log: FileDescriptor?, onLine: (Substring) -> Void = { _ in }
    ) throws -> Int32 {
        let executable = try require(tool)
        _ = try log?.writeAll("$ \(([tool] + arguments).joined(separator: " "))\n".utf8)
        var pending: [UInt8] = []
        var logError: Error?
        let result = try withoutActuallyEscaping(onLine) { onLine in
            try Subprocess.run(
                executable, arguments: arguments, environment: environment, directory: directory,
                stdout: .stream { chunk in
                    do { _ = try log?.writeAll(chunk) } catch { logError = logError ?? error }
                    pending += chunk
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                        onLine(line[...])
                        pending.removeSubrange(pending.startIndex...newline)
                    }
                },
                stderr: .stdout)
        }
        if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)[...]) }
        if let logError { throw logError }
        return result.termination.status
    }

    /// Runs `tool args` with `input` on stdin and returns its stdout; throws on a non-zero exit.
    static func capture(_ tool: String, _ arguments: [String], input: [UInt8]? = nil) throws -> String {
        let result = try Subprocess.run(try require(tool), arguments: arguments, input: input, stderr: .inherit)
        guard result.termination == .exited(0) else {
            throw KernelError.commandFailed(
                command: ([tool] + arguments).joined(separator: " "), status: result.termination.status, log: nil)
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }
}

/// SHA-256 through coreutils' `sha256sum`: Linux has no CryptoKit, and volt-vmm does not carry
/// its own crypto for a cache key.
enum SHA256Sum {
    static func file(_ path: String) throws -> String {
        try digest(from: HostTools.capture("sha256sum", ["--", path]))
    }

    static func string(_ text: String) throws -> String {
        try digest(from: HostTools.capture("sha256sum", ["-"], input: Array(text.utf8)))
    }

    /// The first field of sha256sum's "<64 hex>  <name>" output.
    static func digest(from output: String) throws -> String {
        let hex = output.prefix(while: { $0.isHexDigit })
        guard hex.count == 64 else {
            throw KernelError.io(what: "sha256sum", path: "-", reason: "unexpected output '\(output.prefix(80))'")
        }
        return hex.lowercased()
    }
}
