import Foundation
import Glibc
import IPC
import Sandbox
import Testing
import VoltTestSupport
@testable import VMM

/// The launcher starts only its table's commands, with exactly the fds they take, as
/// children of the caller; removes only its table's files; and goes with its socket.
@Suite struct LauncherTests {
    func pipe() throws -> (read: Int32, write: Int32) {
        let (r, w) = try OwnedFileDescriptor.pipe()
        return (dup(r.rawValue), dup(w.rawValue))   // plain fds this test closes itself
    }

    func readAll(_ fd: Int32) -> String {
        var out = [UInt8](), buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            out += buffer[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func startsTableCommandsWithTheirFdsAsChildrenOfTheCaller() throws {
        let launcher = try Launcher(commands: [
            .init(executable: "/bin/sh", arguments: ["-c", "echo started >&3; ls /proc/self/fd >&3"], fdCount: 1),
        ], files: [])
        let (r, w) = try pipe()
        defer { close(r) }
        let pid = try launcher.run(0, passing: [w])
        close(w)
        let output = readAll(r)
        #expect(try Subprocess.wait(pid) == .exited(0), "the command is our child: we reap it")
        #expect(output.hasPrefix("started\n"))
        // 0-2, 3 (the pipe) and ls's own directory fd: nothing of ours or the launcher's.
        let fds = output.split(separator: "\n").dropFirst().compactMap { Int($0) }
        #expect(fds.filter { $0 > 3 }.count <= 1, "only the passed fd reaches the command: \(fds)")
    }

    /// 18 fds: what a net worker with 16 TAP queues takes (socket + queues + metrics page).
    @Test func passesAsManyFdsAsTheWidestWorkerTakes() throws {
        let launcher = try Launcher(commands: [
            .init(executable: "/bin/sh", arguments: ["-c", "ls /proc/self/fd >&3"], fdCount: 18),
        ], files: [])
        let (r, w) = try pipe()
        defer { close(r) }
        let extra = (0..<17).map { _ in dup(w) }
        let pid = try launcher.run(0, passing: extra + [w])   // all 18 are the pipe; fds 3...20 in the child
        extra.forEach { close($0) }
        close(w)
        let fds = readAll(r).split(separator: "\n").compactMap { Int($0) }
        #expect(try Subprocess.wait(pid) == .exited(0))
        #expect(Set(3...20).isSubset(of: Set(fds)), "\(fds)")
    }

    /// A compromised volt-vmm cannot multiply workers: one process per command at a time.
    @Test func runsEachCommandOnceAtATime() throws {
        let launcher = try Launcher(commands: [.init(executable: "/bin/sleep", arguments: ["30"], fdCount: 0)], files: [])
        let first = try launcher.run(0, passing: [])
        #expect { try launcher.run(0, passing: []) } throws: { "\($0)".contains("busy") }
        kill(first, SIGKILL)
        #expect(try Subprocess.wait(first) == .signaled(SIGKILL))
        let second = try launcher.run(0, passing: [])
        kill(second, SIGKILL)
        _ = try Subprocess.wait(second)
    }

    @Test func refusesWhatIsNotInItsTable() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("launcher-\(getpid())").path
        FileManager.default.createFile(atPath: file, contents: Data())
        defer { unlink(file) }
        let launcher = try Launcher(commands: [.init(executable: "/bin/true", arguments: [], fdCount: 0)], files: [file])
        let (r, w) = try pipe()
        defer { close(r); close(w) }
        #expect(throws: ProcessError.self) { try launcher.run(1, passing: []) }          // no command 1
        #expect(throws: ProcessError.self) { try launcher.run(0, passing: [w]) }         // /bin/true takes no fds
        #expect(throws: ProcessError.self) { try launcher.unlink(1) }                    // no file 1
        #expect(try launcher.runAndWait(0) == .exited(0), "still serving after refusals")
        try launcher.unlink(0)
        #expect(!FileManager.default.fileExists(atPath: file))
        #expect(throws: ProcessError.self) { try launcher.unlink(0) }                    // ENOENT now
    }

    @Test func reportsAFailedExecAndReapsTheChild() throws {
        let launcher = try Launcher(commands: [.init(executable: "/nonexistent/volt-worker", arguments: [], fdCount: 0)], files: [])
        #expect {
            try launcher.run(0, passing: [])
        } throws: { error in
            "\(error)".contains("/nonexistent/volt-worker") && "\(error)".contains("No such file")
        }
    }

    /// A worker started by the launcher dies in seccomp (its --probe-sandbox ends in socket());
    /// the launcher finds the system call in the kernel's audit record.
    @Test func namesTheSystemCallOfASeccompKill() throws {
        let dir = try makeTemporaryDirectory("launcher-sigsys")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let worker = TestEnvironment.product("volt-blk-worker")
        let launcher = try Launcher(commands: [
            .init(executable: worker, arguments: ["--fd", "3", "--path", image, "--probe-sandbox"], fdCount: 1),
        ], files: [])
        let (ours, theirs) = try Connection.pair()
        let pid = try launcher.run(0, passing: [theirs.socket.rawValue])
        withExtendedLifetime(theirs) {}
        #expect(try Subprocess.wait(pid) == .signaled(SIGSYS))
        var number: Int32?
        for _ in 0..<25 where number == nil {   // kauditd prints the record shortly after the kill
            number = launcher.seccompSyscall(of: pid)
            if number == nil { usleep(20_000) }
        }
        #expect(number == 41 && Sandbox.syscallName(41) == "socket", "audit record for \(pid): \(String(describing: number))")
        #expect(launcher.seccompSyscall(of: getpid()) == nil, "no record for a process that was not killed")
        withExtendedLifetime(ours) {}
    }

    /// volt-vmm gone without removing its files (SIGKILL): the launcher removes the rest and
    /// runs the cleanup command; when every file was removed through requests, it does nothing.
    @Test func removesWhatVoltVMMLeftBehind() throws {
        let dir = try makeTemporaryDirectory("launcher-cleanup")
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = ["a", "b", "c", "d"].map { dir.appendingPathComponent($0).path }
        for file in files { FileManager.default.createFile(atPath: file, contents: Data()) }
        let markers = ["left", "clean"].map { dir.appendingPathComponent("reloaded-\($0)").path }
        func release(files: [String], marker: String, removing: [Int]) throws {
            let launcher = try Launcher(commands: [.init(executable: "/usr/bin/touch", arguments: [marker], fdCount: 0)],
                                        files: files, cleanup: 0)
            for index in removing { try launcher.unlink(index) }
        }
        try release(files: Array(files[0...1]), marker: markers[0], removing: [0])
        try release(files: Array(files[2...3]), marker: markers[1], removing: [0, 1])
        var waited = 0
        while !FileManager.default.fileExists(atPath: markers[0]) && waited < 200 { usleep(10_000); waited += 1 }
        #expect(FileManager.default.fileExists(atPath: markers[0]), "cleanup command ran after removing b")
        #expect(files.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "every table file is gone")
        #expect(!FileManager.default.fileExists(atPath: markers[1]), "nothing was left, so no cleanup command")
    }

    @Test func exitsWhenReleased() throws {
        var launcher: Launcher? = try Launcher(commands: [], files: [])
        let pid = launcher!.pid
        #expect(kill(pid, 0) == 0)
        var comm = ""
        for _ in 0..<100 where comm != "volt-launcher\n" {   // it names itself right after the fork
            comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            usleep(10_000)
        }
        #expect(comm == "volt-launcher\n")
        launcher = nil
        #expect(kill(pid, 0) != 0, "closed socket: the launcher exited and was reaped")
    }
}
