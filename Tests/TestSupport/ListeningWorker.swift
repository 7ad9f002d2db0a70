import Foundation

/// A standalone worker process listening on a socket in `dir` (the spec's
/// `--socket-path` convention), started directly or through a launcher program (e.g.
/// setpriv), its stderr collected. Killed at deinit if still running.
open class ListeningWorker {
    public let process = Process()
    public let stderr = Pipe()
    public let socket: String

    /// `launcher`: a program and its arguments that run the worker.
    public init(executable: String, dir: URL, socketName: String, arguments: [String], launcher: [String] = []) throws {
        socket = dir.appendingPathComponent(socketName).path
        let command = launcher + [executable, "--socket-path", socket] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: socket) && process.isRunning { usleep(10_000) }
    }

    /// Waits for the worker to exit by itself; nil if it had to be killed.
    public func exitStatus(timeout: Double = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); process.waitUntilExit(); return nil }
        return process.terminationStatus
    }

    public var errorOutput: String {
        String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }

    /// A fresh folder under the temporary directory.
    public static func tempDir(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
