import Glibc
import SystemPackage

/// AF_UNIX stream sockets by path: the API socket file's life cycle (create 0600, refuse
/// a live one, replace a stale one) and client connects.
enum UnixSocket {
    /// sun_path is 108 bytes including the terminating NUL.
    static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Device and inode of a socket file, so `remove()` unlinks only our own socket.
    struct FileIdentity: Equatable, Sendable {
        let device: UInt64
        let inode: UInt64
    }

    /// A listening socket (non-blocking, close-on-exec) at `path` whose file has mode 0600
    /// and appears only once it accepts connections.
    ///
    /// How (and the races it closes): the socket is bound inside a fresh mkdtemp(3)
    /// directory next to `path` (mode 0700, so nobody else can reach it), chmod 0600,
    /// listen(2), then hard-linked to `path`. link(2) fails with EEXIST if anything
    /// appeared at `path` since we looked, so a live socket or a file created meanwhile is
    /// never clobbered, and a second VMM starting at the same moment sees our socket
    /// already live. The umask plays no part and no process-wide state changes.
    /// Fallbacks: a filesystem without hard links gets rename(2) (atomic, but replaces
    /// whatever raced in); a path so long that the temporary name does not fit in
    /// sun_path is bound directly under umask 0177 (process-wide for the few
    /// microseconds of bind(2), and the file exists before listen(2)).
    static func listen(path: String, backlog: CInt) throws(APIServerError) -> (fd: CInt, identity: FileIdentity) {
        guard !path.isEmpty, !path.utf8.contains(0), path.utf8.count <= maxPathBytes else {
            throw .pathTooLong(path: path)
        }
        try removeIfStale(path)
        let parent = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[..<$0]) } ?? "."
        let template = (parent.isEmpty ? "" : parent) + "/.volt-api-XXXXXX"
        guard template.utf8.count + 2 <= maxPathBytes else { return try bindDirect(path, backlog) }

        var templateBytes = Array(template.utf8CString)
        guard mkdtemp(&templateBytes) != nil else {
            throw .system(operation: "mkdtemp \(template)", errno: Errno(rawValue: errno))
        }
        let dir = String(cString: templateBytes)
        let temporary = dir + "/s"
        defer {
            unlink(temporary)
            rmdir(dir)
        }
        let fd = try newSocket(nonBlocking: true)
        do throws(APIServerError) {
            try bind(fd, temporary)
            _ = try retryingOnInterrupt("chmod \(temporary)") { chmod(temporary, 0o600) }
            _ = try retryingOnInterrupt("listen \(path)") { Glibc.listen(fd, backlog) }
            if link(temporary, path) < 0 {
                let e = errno
                if e == EEXIST { throw APIServerError.socketInUse(path: path) }
                _ = try retryingOnInterrupt("rename \(temporary) to \(path)") { rename(temporary, path) }
            }
            return (fd, try identity(path))
        } catch {
            close(fd)
            throw error
        }
    }

    private static func bindDirect(_ path: String, _ backlog: CInt) throws(APIServerError) -> (fd: CInt, identity: FileIdentity) {
        let fd = try newSocket(nonBlocking: true)
        do throws(APIServerError) {
            let old = umask(0o177)
            defer { umask(old) }
            try bind(fd, path)
            _ = try retryingOnInterrupt("listen \(path)") { Glibc.listen(fd, backlog) }
            return (fd, try identity(path))
        } catch {
            close(fd)
            throw error
        }
    }

    /// Nothing at `path`: fine. A socket nobody accepts on (ECONNREFUSED): removed. A live
    /// socket, or anything that is not a socket: refused.
    static func removeIfStale(_ path: String) throws(APIServerError) {
        var st = stat()
        if lstat(path, &st) < 0 {
            if errno == ENOENT { return }
            throw .system(operation: "lstat \(path)", errno: Errno(rawValue: errno))
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: path) }
        switch probe(path) {
        case 0, EAGAIN:   // accepted, or live with a full backlog
            throw .socketInUse(path: path)
        case ECONNREFUSED:
            if unlink(path) < 0 && errno != ENOENT {
                throw .system(operation: "unlink stale socket \(path)", errno: Errno(rawValue: errno))
            }
        case ENOENT:
            return
        case let e:
            throw .system(operation: "connect \(path) (is it live?)", errno: Errno(rawValue: e))
        }
    }

    /// A non-blocking connect to `path`: 0 if something accepts there, else the errno.
    private static func probe(_ path: String) -> CInt {
        guard let fd = try? newSocket(nonBlocking: true) else { return EMFILE }
        defer { close(fd) }
        do throws(APIServerError) {
            try connect(fd, path)
            return 0
        } catch {
            if case let .system(_, e) = error { return e.rawValue }
            return EINVAL
        }
    }

    static func identity(_ path: String) throws(APIServerError) -> FileIdentity {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw .system(operation: "lstat \(path)", errno: Errno(rawValue: errno))
        }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    static func newSocket(nonBlocking: Bool = false) throws(APIServerError) -> CInt {
        var type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= CInt(SOCK_NONBLOCK.rawValue) }
        return try retryingOnInterrupt("socket(AF_UNIX)") { socket(AF_UNIX, type, 0) }
    }

    static func bind(_ fd: CInt, _ path: String) throws(APIServerError) {
        let r = try withAddress(path) { Glibc.bind(fd, $0, $1) < 0 ? -errno : 0 }
        if r < 0 { throw .system(operation: "bind \(path)", errno: Errno(rawValue: -r)) }
    }

    /// connect(2); a non-blocking socket fails with EAGAIN when the backlog is full.
    /// EINTR is not retried (the connect goes on in the background).
    static func connect(_ fd: CInt, _ path: String) throws(APIServerError) {
        let r = try withAddress(path) { Glibc.connect(fd, $0, $1) < 0 ? -errno : 0 }
        if r < 0 { throw .system(operation: "connect \(path)", errno: Errno(rawValue: -r)) }
    }

    /// Calls `call` with the sockaddr_un for `path`; returns what it returns (0 or -errno).
    private static func withAddress(
        _ path: String, _ call: (UnsafePointer<sockaddr>, socklen_t) -> CInt
    ) throws(APIServerError) -> CInt {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathBytes, !bytes.contains(0) else { throw .pathTooLong(path: path) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }   // rest stays NUL
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
