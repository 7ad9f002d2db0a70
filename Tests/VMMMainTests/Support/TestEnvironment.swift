import Foundation
import Testing

/// Where the tests find the binaries, test guests and kernels they run, and how they
/// treat a missing prerequisite: a loud skip, or a failure under VOLT_REQUIRE_KVM=1 (CI).
enum TestEnvironment {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The build products folder: the test bundle sits next to the executables.
    static let productsDirectory: URL = {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("volt-vmm").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static var voltVMM: String { productsDirectory.appendingPathComponent("volt-vmm").path }

    static var requireAll: Bool { ProcessInfo.processInfo.environment["VOLT_REQUIRE_KVM"] == "1" }

    static var kvmUsable: Bool {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// Returns true when the prerequisite holds. Otherwise prints a loud skip and returns
    /// false — or records a failure when CI demands everything (VOLT_REQUIRE_KVM=1).
    static func require(_ condition: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if condition { return true }
        if requireAll {
            Issue.record("required prerequisite missing: \(what) (VOLT_REQUIRE_KVM=1)", sourceLocation: sourceLocation)
        } else {
            print("⚠️  SKIPPED: \(what) — this test did not run")
        }
        return false
    }

    /// The test guests, built once per test process with `make -C guests`.
    static let guestsBuilt: Bool = {
        let result = try? run("/usr/bin/make", ["-s", "-C", repositoryRoot.appendingPathComponent("guests").path], timeout: 120)
        return result?.status == 0
    }()

    static func guest(_ name: String) -> String? {
        guard guestsBuilt else { return nil }
        let path = repositoryRoot.appendingPathComponent("guests/out/\(name).elf").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool
    }

    /// Runs a program with optional stdin, killing it after `timeout` seconds.
    static func run(_ path: String, _ arguments: [String], stdin: String? = nil, timeout: Double = 30) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        // Drain both pipes concurrently so a chatty child never blocks.
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                usleep(200_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        group.wait()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut)
    }

    static func runVMM(_ arguments: [String], stdin: String? = nil, timeout: Double = 60) throws -> Result {
        try run(voltVMM, arguments, stdin: stdin, timeout: timeout)
    }
}
