import Foundation

/// A program running beside the test (worker, peer), output collected; `stop()` sends
/// SIGTERM and waits (SIGKILL after 5 s).
public final class Background: @unchecked Sendable {
    public let process = Process()
    private let out = Pipe(), err = Pipe()
    private let lock = NSLock()
    private var outData = Data(), errData = Data()
    private let group = DispatchGroup()

    public init(_ path: String, _ arguments: [String]) throws {
        (process.executableURL, process.arguments) = TestEnvironment.tiedToThisProcess(path, arguments)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // A thread of its own per pipe: reads block until the program ends, and blocked
        // work on Dispatch's global pool starves other readers when several programs run.
        readOnThread(out) { [self] chunk in lock.withLock { outData.append(chunk) } }
        readOnThread(err) { [self] chunk in lock.withLock { errData.append(chunk) } }
    }

    private func readOnThread(_ pipe: Pipe, _ append: @escaping @Sendable (Data) -> Void) {
        group.enter()
        let group = self.group
        Thread {
            while case let chunk = pipe.fileHandleForReading.availableData, !chunk.isEmpty { append(chunk) }
            group.leave()
        }.start()
    }

    public var stdout: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
    public var stderr: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }

    /// Waits until stdout or stderr contains `text` (or the process ends / time runs out).
    @discardableResult
    public func waitFor(_ text: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stdout.contains(text) || stderr.contains(text) { return true }
            if !process.isRunning { return stdout.contains(text) || stderr.contains(text) }
            usleep(10_000)
        }
        return false
    }

    /// Waits for the process to end by itself; false on timeout.
    public func wait(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { return false }
        process.waitUntilExit()
        group.wait()
        return true
    }

    @discardableResult
    public func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            if !wait(timeout: 5) { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        group.wait()
        return process.terminationStatus
    }
}
