import Foundation
import Glibc

/// A volt-vmm with stdout and stderr on pipes, both read by a thread of its own that notes
/// when the first stdout line arrives (the guest's console) and keeps stderr (the log).
final class WatchedVMM: @unchecked Sendable {
    let child: Child
    /// Monotonic ns just before the exec.
    let started: UInt64
    private let condition = NSCondition()
    private var stdoutBytes: [UInt8] = []
    private var stderrBytes: [UInt8] = []
    /// (end offset in `stderrBytes`, monotonic ns it arrived) per stderr read.
    private var stderrArrivals: [(end: Int, at: UInt64)] = []
    private var firstLineAt: UInt64?
    private var done = false

    init(_ path: String, _ arguments: [String]) throws {
        let out = Pipe(), err = Pipe()
        started = now()
        child = try Child(path, arguments, standardOutput: out, standardError: err)
        let fds = [out.fileHandleForReading.fileDescriptor, err.fileHandleForReading.fileDescriptor]
        let thread = Thread { [self] in
            withExtendedLifetime((out, err)) { pump(fds) }
        }
        thread.name = "vmm-pipes"
        thread.start()
    }

    private func pump(_ fds: [CInt]) {
        var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var open = fds.count
        while open > 0 {
            guard poll(&polls, nfds_t(polls.count), -1) > 0 else { if errno == EINTR { continue } else { break } }
            let t = now()
            for i in polls.indices where polls[i].fd >= 0 && polls[i].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(polls[i].fd, $0.baseAddress, $0.count) }
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    polls[i].fd = -1
                    open -= 1
                    continue
                }
                condition.withLock {
                    if i == 0 {
                        stdoutBytes += chunk[0..<n]
                        if firstLineAt == nil && chunk[0..<n].contains(0x0A) { firstLineAt = t }
                    } else {
                        stderrBytes += chunk[0..<n]
                        stderrArrivals.append((stderrBytes.count, t))
                    }
                    condition.broadcast()
                }
            }
        }
        condition.withLock { done = true; condition.broadcast() }
    }

    /// Waits until `ready` holds for (stdout, stderr, first-line time) or the pipes close
    /// or `timeout` seconds pass; returns whether it held.
    private func wait(timeout: Double, _ ready: ([UInt8], [UInt8], UInt64?) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        return condition.withLock {
            while !ready(stdoutBytes, stderrBytes, firstLineAt) {
                if done || !condition.wait(until: deadline) { return ready(stdoutBytes, stderrBytes, firstLineAt) }
            }
            return true
        }
    }

    var log: String { condition.withLock { String(decoding: stderrBytes, as: UTF8.self) } }

    /// When volt-vmm's log says the API socket listens (its notice is logged right after
    /// the socket file appears; the file is checked too).
    func waitForAPISocket(_ socketPath: String) throws {
        let needle = Array("API socket \(socketPath): waiting for requests".utf8)
        guard wait(timeout: 20, { _, err, _ in err.firstRange(of: needle) != nil }) else {
            throw BenchError("volt-vmm did not report its API socket within 20 s: \(log)")
        }
        var st = stat()
        guard stat(socketPath, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else {
            throw BenchError("volt-vmm reported \(socketPath) but it is not a socket")
        }
    }

    /// Monotonic ns at which `needle` had arrived on stderr (the log), waiting up to `timeout` s.
    func logTime(of needle: String, timeout: Double = 20) throws -> UInt64 {
        let bytes = Array(needle.utf8)
        guard wait(timeout: timeout, { _, err, _ in err.firstRange(of: bytes) != nil }) else {
            throw BenchError("volt-vmm did not log \"\(needle)\" within \(timeout) s: \(log)")
        }
        return condition.withLock {
            let end = stderrBytes.firstRange(of: bytes)!.upperBound
            return stderrArrivals.first { $0.end >= end }!.at
        }
    }

    /// Waits up to `timeout` s until the guest's output holds `needle`.
    func waitForOutput(_ needle: String, timeout: Double = 20) throws {
        let bytes = Array(needle.utf8)
        guard wait(timeout: timeout, { out, _, _ in out.firstRange(of: bytes) != nil }) else {
            throw BenchError("the guest did not print \"\(needle)\" within \(timeout) s; volt-vmm said: \(log)")
        }
    }

    /// Monotonic ns at which the first complete stdout line arrived, and that line.
    func firstLine() throws -> (at: UInt64, text: String) {
        guard wait(timeout: 20, { _, _, at in at != nil }) else {
            throw BenchError("no guest output within 20 s; volt-vmm said: \(log)")
        }
        return condition.withLock {
            let line = stdoutBytes.split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false)[0]
            return (firstLineAt!, String(decoding: line, as: UTF8.self))
        }
    }

    /// Waits for the exit (killing it after 20 s) and for the pipes to close; returns the status.
    func finish() -> Int32 {
        let deadline = Date().addingTimeInterval(20)
        while child.process.isRunning && Date() < deadline { usleep(1000) }
        child.stop()
        _ = wait(timeout: 5) { _, _, _ in false }
        return child.process.terminationStatus
    }
}
