import CShim
import Glibc
import Synchronization
import SystemPackage

/// The launcher process (`CShim/volt_launcher.c`): forked before volt-vmm locks itself down,
/// it starts the programs and removes the files a running VM still needs — worker restarts,
/// `networkctl reload`, networkd units at exit — from tables fixed at fork time. After it
/// exists, volt-vmm itself needs neither execve nor write access to the file system.
final class Launcher: @unchecked Sendable {
    // @unchecked: requests go one at a time through the mutex; the rest is immutable.
    /// A program the launcher may start: executable, argv[1...], and how many fds each start
    /// passes (they become fds 3, 4, ...).
    struct Command: Equatable {
        var executable: String
        var arguments: [String]
        var fdCount: Int
    }

    let pid: pid_t
    let commands: [Command]
    let files: [String]
    private let socket: Mutex<CInt>

    /// Forks the launcher. Safe with other threads running: the child runs only C code
    /// that makes async-signal-safe calls (no allocator, no locks). If volt-vmm ends without
    /// removing `files` (SIGKILL, a crash), the launcher removes them and runs command `cleanup`.
    init(commands: [Command], files: [String], cleanup: Int? = nil) throws {
        let argvs = commands.map { CStringArray([$0.executable] + $0.arguments) }
        let paths = CStringArray(commands.map(\.executable))
        let fileNames = CStringArray(files)
        var launcherPID: pid_t = 0
        let fd = withExtendedLifetime((argvs, paths, fileNames)) {
            let table = commands.indices.map { i in
                volt_launch_command(path: paths.pointers[i], argv: argvs[i].pointers, fd_count: CInt(commands[i].fdCount))
            }
            return table.withUnsafeBufferPointer { t in
                fileNames.pointers.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: files.count + 1) { f in
                    volt_launcher_start(t.baseAddress, t.count, f, files.count, CInt(cleanup ?? -1), &launcherPID)
                }
            }
        }
        guard fd >= 0 else { throw ProcessError.launcherForkFailed(Errno(rawValue: -fd)) }
        pid = launcherPID
        self.commands = commands
        self.files = files
        socket = Mutex(fd)
    }

    /// Ends the launcher (it exits when its socket closes) and reaps it.
    deinit {
        close(socket.withLock { $0 })
        _ = try? Subprocess.wait(pid)
    }

    /// Starts command `index` with `fds` as its fds 3, 4, ...; returns the pid of the new
    /// child of this process.
    func run(_ index: Int, passing fds: [CInt]) throws -> pid_t {
        var failed: pid_t = -1
        let result = socket.withLock { sock in volt_launcher_run(sock, UInt32(index), fds, fds.count, &failed) }
        if failed > 0 { _ = try? Subprocess.wait(failed) }
        guard result >= 0 else {
            let what = commands.indices.contains(index) ? commands[index].executable : "command \(index)"
            throw ProcessError.launcherStartFailed(what: what, Errno(rawValue: -result))
        }
        return pid_t(result)
    }

    /// Runs command `index` without fds and waits for it.
    func runAndWait(_ index: Int) throws -> Subprocess.Termination {
        try Subprocess.wait(try run(index, passing: []))
    }

    /// The system call in the kernel's newest seccomp audit record for `pid`, or nil.
    func seccompSyscall(of pid: pid_t) -> Int32? {
        let result = socket.withLock { volt_launcher_seccomp_syscall($0, pid) }
        return result >= 0 ? result : nil
    }

    /// Removes file `index` of the table.
    func unlink(_ index: Int) throws {
        let result = socket.withLock { volt_launcher_unlink($0, UInt32(index)) }
        guard result >= 0 else {
            let what = files.indices.contains(index) ? files[index] : "file \(index)"
            throw ProcessError.launcherRemoveFailed(what: what, Errno(rawValue: -result))
        }
    }
}
