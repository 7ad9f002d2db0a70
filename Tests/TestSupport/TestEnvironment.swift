import Foundation
import Testing
import TestSupport

/// Where the tests find the binaries, test guests and kernels they run, and how they
/// treat a missing prerequisite: a loud skip, or a failure under VOLT_REQUIRE_KVM=1 (CI).
/// Shared by every integration test target (VMMTests, BlockWorkerTests).
public enum TestEnvironment {
    /// This file is Tests/TestSupport/TestEnvironment.swift.
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The build products folder: the test bundle sits next to the executables, unless
    /// VOLT_PRODUCTS_DIR names another one (scripts/test.sh: the static-runtime build).
    public static let productsDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["VOLT_PRODUCTS_DIR"], !dir.isEmpty {
            let url = URL(fileURLWithPath: dir).standardizedFileURL
            precondition(FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("volt-vmm").path),
                         "VOLT_PRODUCTS_DIR=\(dir) holds no volt-vmm: build it (scripts/build-static.sh)")
            return url
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("volt-vmm").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    public static var voltVMM: String { productsDirectory.appendingPathComponent("volt-vmm").path }
    /// Another built product, e.g. "volt-blk-worker".
    public static func product(_ name: String) -> String { productsDirectory.appendingPathComponent(name).path }

    /// The first of `names` found on PATH (or in /usr/sbin, /sbin), as an absolute path.
    public static func tool(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static var requireAll: Bool { Prerequisite.requireAll }

    public static var kvmUsable: Bool {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// Returns true when the prerequisite holds; otherwise a loud skip, or a failure
    /// under VOLT_REQUIRE_KVM=1 (shared with the other test targets: TestSupport).
    public static func require(_ condition: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        Prerequisite.require(condition, what, sourceLocation: sourceLocation)
    }

    /// The test guests, built once per test process with `make -C guests`.
    public static let guestsBuilt: Bool = {
        let result = try? run("/usr/bin/make", ["-s", "-C", repositoryRoot.appendingPathComponent("guests").path], timeout: 120)
        return result?.status == 0
    }()

    public static func guest(_ name: String) -> String? {
        guard guestsBuilt else { return nil }
        let path = repositoryRoot.appendingPathComponent("guests/out/\(name).elf").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
    }

    /// `path arguments` wrapped so the program gets SIGTERM if this test process dies (a
    /// crashed test run must not leave VMs running): `setpriv --pdeathsig SIGTERM`, which
    /// execs the program in place (same pid). Unwrapped where setpriv is missing.
    public static func tiedToThisProcess(_ path: String, _ arguments: [String]) -> (URL, [String]) {
        let setpriv = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: setpriv) else { return (URL(fileURLWithPath: path), arguments) }
        return (URL(fileURLWithPath: setpriv), ["--pdeathsig", "TERM", "--", path] + arguments)
    }

    /// Runs a program, killing it after `timeout` seconds. `stdin` is written at once, or
    /// only after stdout shows `inputAfter`; with `stopWhen`, the program is terminated
    /// as soon as its stdout contains that text (for guests that never finish here).
    public static func run(_ path: String, _ arguments: [String], stdin: String? = nil, inputAfter: String? = nil,
                           stopWhen: String? = nil, whenOutput: (String, () -> Void)? = nil,
                           timeout: Double = 30) throws -> Result {
        let process = Process()
        (process.executableURL, process.arguments) = tiedToThisProcess(path, arguments)
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        let collected = Collected()
        let group = DispatchGroup()
        // Threads of their own, as in Background: blocking reads must not starve Dispatch's pool.
        for (pipe, append) in [(out, collected.append(stdout:)), (err, collected.append(stderr:))] {
            group.enter()
            Thread {
                while case let chunk = pipe.fileHandleForReading.availableData, !chunk.isEmpty { append(chunk) }
                group.leave()
            }.start()
        }
        var pendingInput = stdin
        if inputAfter == nil, let text = pendingInput {
            input.fileHandleForWriting.write(Data(text.utf8))
            try? input.fileHandleForWriting.close()
            pendingInput = nil
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var pendingAction = whenOutput
        while process.isRunning {
            let sofar = collected.stdout
            if let (trigger, action) = pendingAction, sofar.contains(trigger) {
                action()
                pendingAction = nil
            }
            if let trigger = inputAfter, let text = pendingInput, sofar.contains(trigger) {
                input.fileHandleForWriting.write(Data(text.utf8))
                pendingInput = nil
            }
            if let stop = stopWhen, sofar.contains(stop) {
                process.terminate()
                break
            }
            if Date() > deadline {
                timedOut = true
                process.terminate()
                break
            }
            usleep(5_000)
        }
        if process.isRunning {
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        group.wait()
        return Result(status: process.terminationStatus, stdout: collected.stdout,
                      stderr: collected.stderr, timedOut: timedOut)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data(), err = Data()
        func append(stdout chunk: Data) { lock.withLock { out.append(chunk) } }
        func append(stderr chunk: Data) { lock.withLock { err.append(chunk) } }
        var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
        var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }
    }

    public static func runVMM(_ arguments: [String], stdin: String? = nil, inputAfter: String? = nil,
                              stopWhen: String? = nil, whenOutput: (String, () -> Void)? = nil,
                              timeout: Double = 60) throws -> Result {
        try run(voltVMM, arguments, stdin: stdin, inputAfter: inputAfter, stopWhen: stopWhen,
                whenOutput: whenOutput, timeout: timeout)
    }

    /// The pids of workers volt-vmm reported spawning ("spawned volt-blk-worker pid N"),
    /// so tests check their own workers, not others running on the machine.
    public static func spawnedWorkerPIDs(_ log: String) -> [pid_t] {
        log.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "worker pid ") else { return nil }
            return pid_t(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// A kernel from the kernel store (built by `volt-vmm kernel build`), by file name.
    public static func storedKernel(_ file: String) -> String? {
        let cache = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
            ?? (NSHomeDirectory() + "/.cache")
        let path = cache + "/volt-vmm/kernels/default/" + file
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
