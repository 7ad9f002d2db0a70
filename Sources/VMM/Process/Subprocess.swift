import CShim
import Glibc
import SystemPackage

/// Child processes through `posix_spawn` (no Swift code runs between fork and exec), without
/// Foundation's `Process`: spawn with chosen fds handed over and the rest closed, wait, and run a
/// tool with its output captured or streamed.
///
/// Every child starts with an empty signal mask and default signal dispositions, whatever the
/// spawning thread had (volt-vmm blocks termination signals in its threads).
enum Subprocess {
    /// How a child ended.
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// The exit code, or the signal number for a child killed by a signal (what Foundation's
        /// `Process.terminationStatus` reported).
        var status: Int32 {
            switch self {
            case .exited(let code), .signaled(let code): return code
            }
        }

        var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signaled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    /// Which fds of this process the child gets, and at which numbers.
    struct FileActions {
        /// (`fd` of this process, its number in the child). The pairs apply as if at once, so a
        /// source may be another pair's target; the child's copies are not close-on-exec.
        var dup2: [(fd: CInt, to: CInt)] = []
        /// Closes every fd >= this in the child, after the dup2s (nil: fds this process has
        /// without close-on-exec stay open in the child).
        var closeFrom: CInt?

        init(dup2: [(fd: CInt, to: CInt)] = [], closeFrom: CInt? = nil) {
            self.dup2 = dup2
            self.closeFrom = closeFrom
        }
    }

    /// Starts `executable` (a path, not looked up on $PATH) with `arguments` (argv[1...]),
    /// `environment` (nil: this process's) in `directory` (nil: this process's). Returns its pid;
    /// the caller must `wait` for it. The fds in `fileActions` must stay open until this returns.
    static func spawn(
        _ executable: String, arguments: [String] = [], environment: [String: String]? = nil,
        directory: String? = nil, fileActions: FileActions = FileActions()
    ) throws(SubprocessError) -> pid_t {
        let argv = CStringArray([executable] + arguments)
        let envp = environment.map { CStringArray($0.map { "\($0.key)=\($0.value)" }) }
        let sources = fileActions.dup2.map(\.fd)
        let targets = fileActions.dup2.map(\.to)
        let result = withExtendedLifetime((argv, envp)) {
            volt_spawn(executable, argv.pointers, envp?.pointers ?? environ, directory,
                       sources, targets, sources.count, fileActions.closeFrom ?? -1)
        }
        guard result >= 0 else { throw .spawnFailed(executable: executable, Errno(rawValue: -result)) }
        return pid_t(result)
    }

    /// Waits for child `pid` to end (EINTR is retried).
    static func wait(_ pid: pid_t) throws(SubprocessError) -> Termination {
        var status: CInt = 0
        let result = volt_waitpid(pid, &status)
        guard result >= 0 else { throw .systemCall("waitpid", Errno(rawValue: -result)) }
        let signal = volt_wait_term_signal(status)
        return signal >= 0 ? .signaled(signal) : .exited(volt_wait_exit_code(status))
    }

    /// Where `run` sends a child's stdout or stderr.
    enum Output {
        /// This process's own stdout or stderr.
        case inherit
        /// /dev/null.
        case discard
        /// Collected and returned in `Result`.
        case capture
        /// Handed over chunk by chunk as it arrives.
        case stream((ArraySlice<UInt8>) -> Void)
        /// For stderr only: the same pipe as stdout, so both arrive merged in order.
        case stdout
    }

    struct Result {
        var termination: Termination
        /// What `.capture` collected (empty otherwise).
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
    }

    /// Spawns `executable` like `spawn`, with `input` on its stdin (nil: /dev/null), reads its
    /// stdout and stderr as they come (both at once, through poll(), so a child that fills one
    /// pipe while we wait on the other cannot deadlock), and waits for it. Reading ends when
    /// every holder of the pipes' write ends (the child and its own children) has closed them.
    /// `fileActions` come after the stdio redirections, so they should not target fds 0-2.
    static func run(
        _ executable: String, arguments: [String] = [], environment: [String: String]? = nil,
        directory: String? = nil, input: [UInt8]? = nil, stdout: Output = .capture, stderr: Output = .capture,
        fileActions: FileActions = FileActions()
    ) throws(SubprocessError) -> Result {
        var readers: [(fd: OwnedFileDescriptor, stream: Int)] = []
        var actions = FileActions(closeFrom: fileActions.closeFrom)
        let pid: pid_t
        do {
            // The child's ends: released (closed) when this block ends, so that the read ends
            // see EOF once the child's copies are closed too.
            var childEnds: [OwnedFileDescriptor] = []
            let stdin = if let input { try inputFile(input) } else { try OwnedFileDescriptor.openNull() }
            childEnds.append(stdin)
            actions.dup2.append((stdin.rawValue, STDIN_FILENO))
            for (number, output) in [(STDOUT_FILENO, stdout), (STDERR_FILENO, stderr)] {
                switch output {
                case .inherit:
                    continue
                case .discard:
                    let null = try OwnedFileDescriptor.openNull()
                    childEnds.append(null)
                    actions.dup2.append((null.rawValue, number))
                case .capture, .stream:
                    let (read, write) = try OwnedFileDescriptor.pipe()
                    readers.append((read, Int(number)))
                    childEnds.append(write)
                    actions.dup2.append((write.rawValue, number))
                case .stdout:
                    guard number == STDERR_FILENO else { throw .systemCall("Output.stdout for stdout", .invalidArgument) }
                    // Wherever the child's stdout goes (this process's own when inherited).
                    let merged = actions.dup2.first(where: { $0.to == STDOUT_FILENO })?.fd ?? STDOUT_FILENO
                    actions.dup2.append((merged, number))
                }
            }
            actions.dup2 += fileActions.dup2
            pid = try withExtendedLifetime(childEnds) { () throws(SubprocessError) -> pid_t in
                try spawn(executable, arguments: arguments, environment: environment, directory: directory,
                          fileActions: actions)
            }
        }

        var result = Result(termination: .exited(0))
        do {
            try pump(readers) { stream, chunk in
                switch (stream == Int(STDOUT_FILENO) ? stdout : stderr, stream == Int(STDOUT_FILENO)) {
                case (.stream(let handler), _): handler(chunk)
                case (.capture, true): result.stdout += chunk
                case (.capture, false): result.stderr += chunk
                default: break
                }
            }
        } catch {
            // Do not leave a child (or a zombie) behind on a read error.
            kill(pid, SIGKILL)
            _ = try? wait(pid)
            throw error
        }
        result.termination = try wait(pid)
        return result
    }

    /// Reads every fd until EOF on all of them, handing each chunk to `body` with its stream number.
    private static func pump(
        _ readers: [(fd: OwnedFileDescriptor, stream: Int)], _ body: (Int, ArraySlice<UInt8>) -> Void
    ) throws(SubprocessError) {
        var open = readers
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while !open.isEmpty {
            var polls = open.map { pollfd(fd: $0.fd.rawValue, events: Int16(POLLIN), revents: 0) }
            let ready = volt_poll(&polls, UInt(polls.count), -1)
            guard ready >= 0 else { throw .systemCall("poll", Errno(rawValue: -ready)) }
            var finished: [Int] = []
            for (index, poll) in polls.enumerated() where poll.revents != 0 {
                let count: Int
                do {
                    count = try buffer.withUnsafeMutableBytes {
                        try FileDescriptor(rawValue: poll.fd).read(into: $0, retryOnInterrupt: true)
                    }
                } catch {
                    throw .systemCall("read", error as? Errno ?? .ioError)
                }
                if count == 0 { finished.append(index) } else { body(open[index].stream, buffer[..<count]) }
            }
            for index in finished.reversed() { open.remove(at: index) }
        }
    }

    /// `input` in an unlinked memory file, rewound: any size, and no writer to deadlock or SIGPIPE.
    private static func inputFile(_ input: [UInt8]) throws(SubprocessError) -> OwnedFileDescriptor {
        let raw = volt_memfd_create("volt-subprocess-input", VOLT_MFD_CLOEXEC)
        guard raw >= 0 else { throw .systemCall("memfd_create", Errno(rawValue: -raw)) }
        let file = OwnedFileDescriptor(raw)
        do {
            _ = try FileDescriptor(rawValue: raw).writeAll(input)
            _ = try FileDescriptor(rawValue: raw).seek(offset: 0, from: .start)
        } catch {
            throw .systemCall("writing the input of a child", error as? Errno ?? .ioError)
        }
        return file
    }
}

enum SubprocessError: Error, Equatable, CustomStringConvertible {
    /// posix_spawn failed, the exec of `executable` included (e.g. `.noSuchFileOrDirectory`).
    case spawnFailed(executable: String, Errno)
    /// Setting up, reading from or waiting for a child failed.
    case systemCall(String, Errno)

    var description: String {
        switch self {
        case .spawnFailed(let executable, let errno): return "cannot start \(executable): \(errno)"
        case .systemCall(let call, let errno): return "\(call) failed: \(errno)"
        }
    }
}

/// An fd closed when the object goes away. Keep it alive (`withExtendedLifetime`) across any
/// call that only gets its number, such as a spawn.
final class OwnedFileDescriptor: Sendable {
    let rawValue: CInt

    init(_ rawValue: CInt) { self.rawValue = rawValue }

    deinit { close(rawValue) }

    /// A close-on-exec pipe: (read end, write end).
    static func pipe() throws(SubprocessError) -> (read: OwnedFileDescriptor, write: OwnedFileDescriptor) {
        var fds: [CInt] = [-1, -1]
        let result = volt_pipe2(&fds, O_CLOEXEC)
        guard result >= 0 else { throw .systemCall("pipe2", Errno(rawValue: -result)) }
        return (OwnedFileDescriptor(fds[0]), OwnedFileDescriptor(fds[1]))
    }

    /// /dev/null, read-write, close-on-exec.
    static func openNull() throws(SubprocessError) -> OwnedFileDescriptor {
        do {
            return OwnedFileDescriptor(try FileDescriptor.open("/dev/null", .readWrite, options: [.closeOnExec]).rawValue)
        } catch {
            throw .systemCall("opening /dev/null", error as? Errno ?? .ioError)
        }
    }
}

/// A NULL-terminated array of C strings for argv/envp, freed with the object.
final class CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count + 1
        pointers = .allocate(capacity: count)
        pointers.initialize(from: strings.map { strdup($0) } + [nil], count: count)
    }

    deinit {
        for index in 0..<count { free(pointers[index]) }
        pointers.deallocate()
    }
}
