import CShim
import Glibc
import Testing
@testable import VMM

@Suite struct SubprocessTests {
    private func shell(_ script: String, input: [UInt8]? = nil, fileActions: Subprocess.FileActions = .init()) throws -> Subprocess.Result {
        try Subprocess.run("/bin/sh", arguments: ["-c", script], input: input, fileActions: fileActions)
    }

    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The "pipe:[inode]" that /proc/PID/fd/N links to for `fd`.
    private func pipeName(_ fd: CInt) -> String {
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        return "pipe:[\(info.st_ino)]"
    }

    @Test(arguments: [0, 1, 3, 255])
    func exitCode(code: Int32) throws {
        #expect(try shell("exit \(code)").termination == .exited(code))
    }

    @Test func deathBySignal() throws {
        let result = try shell("kill -KILL $$")
        #expect(result.termination == .signaled(SIGKILL))
        #expect(result.termination.status == SIGKILL)
        #expect(try shell("kill -TERM $$").termination == .signaled(SIGTERM))
    }

    @Test func capturesStdoutAndStderrApartAndFeedsInput() throws {
        let result = try shell("cat; echo err >&2", input: Array("in\n".utf8))
        #expect(result.termination == .exited(0))
        #expect(text(result.stdout) == "in\n")
        #expect(text(result.stderr) == "err\n")
    }

    /// 2 MiB on stderr before anything on stdout: a reader that drained stdout first would wait
    /// forever on a child blocked writing to a full stderr pipe.
    @Test func largeOutputOnBothStreamsDoesNotDeadlock() throws {
        let size = 2 << 20
        let result = try shell("head -c \(size) /dev/zero | tr '\\0' e >&2; head -c \(size) /dev/zero | tr '\\0' o")
        #expect(result.termination == .exited(0))
        #expect(result.stdout.count == size && result.stdout.allSatisfy { $0 == UInt8(ascii: "o") })
        #expect(result.stderr.count == size && result.stderr.allSatisfy { $0 == UInt8(ascii: "e") })
    }

    @Test func largeInput() throws {
        let input = [UInt8](repeating: UInt8(ascii: "i"), count: 1 << 20)
        #expect(text(try shell("wc -c", input: input).stdout).trimmingPrefix(while: \.isWhitespace) == "1048576\n")
    }

    @Test func streamingAndMergedStderr() throws {
        var chunks: [UInt8] = []
        let result = try Subprocess.run(
            "/bin/sh", arguments: ["-c", "echo out; echo err >&2; echo out2"],
            stdout: .stream { chunks += $0 }, stderr: .stdout)
        #expect(result.termination == .exited(0))
        #expect(text(chunks) == "out\nerr\nout2\n")
        #expect(result.stdout.isEmpty && result.stderr.isEmpty)
    }

    @Test func environmentAndDirectory() throws {
        let result = try Subprocess.run(
            "/bin/sh", arguments: ["-c", "echo \"$VOLT_TEST_VAR\"; pwd"], environment: ["VOLT_TEST_VAR": "x y"],
            directory: "/proc")
        #expect(text(result.stdout) == "x y\n/proc\n")
    }

    @Test func missingExecutableIsASpawnError() {
        #expect(throws: SubprocessError.spawnFailed(executable: "/no/such/tool", .noSuchFileOrDirectory)) {
            try Subprocess.run("/no/such/tool")
        }
    }

    /// The worker-process case: one fd handed over at a fixed number, every other fd closed,
    /// even one this process left without close-on-exec.
    @Test func dup2ToAFixedNumberAndCloseTheRest() throws {
        let (read, write) = try OwnedFileDescriptor.pipe()
        let leaked = volt_memfd_create("volt-leak-test", 0)   // no close-on-exec on purpose
        #expect(leaked >= 0)
        defer { close(leaked) }
        let result = try withExtendedLifetime((read, write)) { () throws -> Subprocess.Result in
            try shell("echo hello >&3; ls -l /proc/self/fd",
                      fileActions: Subprocess.FileActions(dup2: [(fd: write.rawValue, to: 3)], closeFrom: 4))
        }
        #expect(result.termination == .exited(0))
        let listing = text(result.stdout)
        #expect(!listing.contains("volt-leak-test"))
        // "lrwx------ 1 root root 64 ... 3 -> pipe:[123]": fd number and target.
        let links = listing.split(separator: "\n").compactMap { line -> (Int, Substring)? in
            let parts = line.split(separator: " -> ")
            guard parts.count == 2, let fd = parts[0].split(separator: " ").last.flatMap({ Int($0) }) else { return nil }
            return (fd, parts[1])
        }
        // 0 is /dev/null, 1 and 2 our capture pipes, 3 the handed-over pipe; ls's own directory fd
        // (/proc/<pid>/fd) is the only other one.
        let others = links.filter { ![0, 1, 2, 3].contains($0.0) }
        #expect(others.count == 1 && others.allSatisfy { $0.1.hasPrefix("/proc/") }, "\(listing)")
        #expect(links.contains { $0.0 == 3 && $0.1 == pipeName(write.rawValue) }, "\(listing)")
        #expect(links.contains { $0.0 == 0 && $0.1 == "/dev/null" }, "\(listing)")
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = Glibc.read(read.rawValue, &buffer, buffer.count)
        #expect(count == 6 && text(Array(buffer[..<6])) == "hello\n")
    }

    /// Pairs apply as if at once: swapping two fds works.
    @Test func dup2PairsMaySwap() throws {
        let (_, a) = try OwnedFileDescriptor.pipe()
        let (_, b) = try OwnedFileDescriptor.pipe()
        let result = try withExtendedLifetime((a, b)) { () throws -> Subprocess.Result in
            try Subprocess.run("/bin/sh", arguments: ["-c", "readlink /proc/$$/fd/\(a.rawValue) /proc/$$/fd/\(b.rawValue)"],
                               fileActions: .init(dup2: [(a.rawValue, b.rawValue), (b.rawValue, a.rawValue)]))
        }
        #expect(text(result.stdout) == "\(pipeName(b.rawValue))\n\(pipeName(a.rawValue))\n")
    }

    /// volt-vmm blocks termination signals in its threads; a child must start with none blocked
    /// and none ignored.
    @Test func childStartsWithAnEmptySignalMaskAndDefaultHandlers() throws {
        #expect(volt_block_signal(SIGTERM) == 0)
        defer { _ = volt_unblock_signal(SIGTERM) }
        let status = text(try Subprocess.run("/bin/cat", arguments: ["/proc/self/status"]).stdout)
        #expect(status.contains("SigBlk:\t0000000000000000\n"), "\(status)")
        // glibc's posix_spawn itself leaves its two internal signals (32, 33) ignored in every child.
        let ignored = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            .flatMap { UInt64($0.dropFirst("SigIgn:\t".count), radix: 16) }
        #expect(ignored.map { $0 & ~(UInt64(0b11) << 31) } == 0, "\(status)")
    }
}
