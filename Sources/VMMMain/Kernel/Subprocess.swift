import Foundation

/// Runs host tools (tar, make, sha256sum) for the kernel build. Only used by `volt-vmm kernel ...`
/// commands, never on a VM's path.
enum Subprocess {
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
    /// to `log` and handing each complete line to `onLine`. Returns the exit status.
    @discardableResult
    static func run(
        _ tool: String, _ arguments: [String], in directory: String? = nil,
        environment: [String: String]? = nil, log: FileHandle?, onLine: (Substring) -> Void = { _ in }
    ) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try require(tool))
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        log?.write(Data("$ \(([tool] + arguments).joined(separator: " "))\n".utf8))
        try process.run()
        // Close our copy of the write end so EOF arrives when the child (and its children) exit.
        try? pipe.fileHandleForWriting.close()
        let reader = pipe.fileHandleForReading
        var pending = Data()
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            log?.write(chunk)
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                onLine(line[...])
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)[...]) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs `tool args` with `input` on stdin and returns its stdout; throws on a non-zero exit.
    static func capture(_ tool: String, _ arguments: [String], input: Data? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try require(tool))
        process.arguments = arguments
        let out = Pipe()
        let inPipe = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let input {
            // Inputs here are tiny (a few hashes), far below the pipe buffer: no deadlock.
            inPipe.fileHandleForWriting.write(input)
            try? inPipe.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw KernelError.commandFailed(
                command: ([tool] + arguments).joined(separator: " "), status: process.terminationStatus, log: nil)
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// SHA-256 through coreutils' `sha256sum`: Linux has no CryptoKit, and volt-vmm does not carry
/// its own crypto for a cache key.
enum SHA256Sum {
    static func file(_ path: String) throws -> String {
        try digest(from: Subprocess.capture("sha256sum", ["--", path]))
    }

    static func string(_ text: String) throws -> String {
        try digest(from: Subprocess.capture("sha256sum", ["-"], input: Data(text.utf8)))
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
