// The API's HTTP/1.1 server on a Unix socket: one thread, one poll(2) loop.
//
// System calls `run` makes (the API thread's seccomp allowlist is built from this list;
// the same lists are `APIServer.runSystemCalls` and `.allocatorSystemCalls`, and
// SeccompTests runs the server under a filter allowing exactly them):
//   poll          wait on the stop fd, the listening socket and the connections
//   accept4       on the listening fd only, flags SOCK_NONBLOCK | SOCK_CLOEXEC
//   read          request bytes from a connection
//   sendto        answers (glibc's send(2)), flags MSG_NOSIGNAL: a vanished client is
//                 EPIPE, never SIGPIPE
//   close         connections (ended, failed, timed out, closed to make room, refused
//                 when full; all on return)
//   clock_gettime CLOCK_MONOTONIC for the request timeout (the vDSO answers it: no real
//                 system call in practice; listed in case)
// plus what glibc malloc needs when Swift allocates arrays and strings on this thread:
//   mmap, munmap  large blocks (e.g. a 256 KiB answer) and a new thread arena
//   mprotect      a thread arena grows by mprotect, not brk
//   madvise, brk, mremap, futex   trimming, the main arena, realloc of mmapped blocks,
//                 arena and Swift runtime locks
// and whatever the handler itself calls. No open/openat, socket, bind, listen, fcntl,
// unlink or execve: everything that creates or changes a file or socket happens in
// `listen(path:)`, `init(listeningFD:)` and `remove()`, before and after `run`. `run`
// does not read the stop fd either.

import CShim
import Glibc
import SystemPackage

public final class APIServer: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Largest request body (Firecracker's --http-api-max-payload-size default).
        public var maxPayload: Int
        /// How long a request may take to arrive, from its first byte, and how long its
        /// answer may take to leave, from when it is queued; a connection over either is
        /// closed. Bytes trickling in or out do not extend it, so a slow client cannot hold
        /// a slot. A keep-alive connection idle between requests has no timeout at all (as
        /// with micro_http): Go's http.Transport, behind firecracker-go-sdk, reuses idle
        /// connections and does not retry a PUT or PATCH that meets one just closed.
        public var requestTimeout: Duration
        /// Connections served at once. A client beyond it takes the place of the
        /// connection idle between requests the longest, which is closed (it sees EOF
        /// before it sends anything, and reconnects); if every connection is in the middle
        /// of a request or answer, the client is accepted, answered 503 and closed (as
        /// micro_http does at its limit of 10), so it learns why at once instead of hanging
        /// in the backlog.
        public var maxConnections: Int

        public init(maxPayload: Int = 51_200, requestTimeout: Duration = .seconds(30), maxConnections: Int = 16) {
            self.maxPayload = maxPayload
            self.requestTimeout = requestTimeout
            self.maxConnections = maxConnections
        }
    }

    /// The system calls `run` makes itself (the list at the top of APIServer.swift).
    public static let runSystemCalls = ["poll", "accept4", "read", "sendto", "close", "clock_gettime"]
    /// What glibc malloc may call on the `run` thread when Swift allocates.
    public static let allocatorSystemCalls = ["mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "futex"]

    /// The listening socket (non-blocking, close-on-exec), owned: closed on deinit.
    public let listeningFD: CInt
    /// The socket file, if `listen(path:)` created it.
    public let path: String?
    public let limits: Limits
    private let identity: UnixSocket.FileIdentity?

    private init(fd: CInt, path: String?, identity: UnixSocket.FileIdentity?, limits: Limits) {
        listeningFD = fd
        self.path = path
        self.identity = identity
        self.limits = limits
    }

    /// Creates the socket file at `path` with mode 0600 and listens on it. Refuses a path
    /// where something accepts connections or that is not a socket; replaces a stale
    /// socket (connect gets ECONNREFUSED). See `UnixSocket.listen` for the races handled.
    public static func listen(path: String, limits: Limits = Limits()) throws(APIServerError) -> APIServer {
        let (fd, identity) = try UnixSocket.listen(path: path, backlog: 64)
        return APIServer(fd: fd, path: path, identity: identity, limits: limits)
    }

    /// Adopts a listening Unix stream socket (e.g. inherited from a launcher). Makes it
    /// non-blocking and close-on-exec; `remove()` then has no file to unlink.
    public init(listeningFD fd: CInt, limits: Limits = Limits()) throws(APIServerError) {
        var accepting: CInt = 0
        var type: CInt = 0
        var domain: CInt = 0
        var len = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0, accepting == 1,
              getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0, type == CInt(SOCK_STREAM.rawValue),
              getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0, domain == AF_UNIX
        else { throw .notAListeningSocket(fd: fd) }
        try Self.makeNonBlocking(fd)
        let flags = fcntl(fd, F_GETFD)
        guard flags >= 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 else {
            throw .system(operation: "fcntl(F_SETFD, FD_CLOEXEC) on fd \(fd)", errno: Errno(rawValue: errno))
        }
        listeningFD = fd
        path = nil
        identity = nil
        self.limits = limits
    }

    deinit { _ = Glibc.close(listeningFD) }

    /// Unlinks the socket file, if it is still the one we created (a file someone put
    /// there since is left alone). Call it on every exit path; calling it twice is fine.
    public func remove() {
        guard let path, let identity, (try? UnixSocket.identity(path)) == identity else { return }
        unlink(path)
    }

    /// Serves connections until `stopFD` (an eventfd or pipe) becomes readable, calling
    /// `handler` for each complete request on this thread, one request at a time. Returns
    /// normally when stopped (every connection closed); throws only if poll(2) itself
    /// fails. Nothing a client sends or fails to read stops the loop.
    public func run(handler: (HTTPRequest) -> HTTPResponse, stopFD: CInt) throws(APIServerError) {
        let timeoutNanos = limits.requestTimeout.saturatingNanoseconds
        let maxConnections = max(1, limits.maxConnections)
        let busy = HTTPResponse.fault(503, message: "Too many open connections (the limit is \(maxConnections)); retry later.")
            .serialized(closing: true)
        var connections: [Connection] = []
        var fds: [pollfd] = []
        var acceptPausedUntil: UInt64 = 0
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
        defer {
            scratch.deallocate()
            for c in connections { c.close() }
        }

        while true {
            var now = monotonicNanoseconds()
            let accepting = now >= acceptPausedUntil
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: accepting ? listeningFD : -1, events: Int16(POLLIN), revents: 0))
            var wake = accepting ? UInt64.max : acceptPausedUntil
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.wantsOutput ? POLLOUT : POLLIN), revents: 0))
                if c.phase != .idle {
                    let (deadline, overflow) = c.since.addingReportingOverflow(timeoutNanos)
                    wake = min(wake, overflow ? .max : deadline)
                }
            }
            let timeout: CInt = wake == .max ? -1 : CInt(min((wake &- min(wake, now)) / 1_000_000 + 1, 60_000))

            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 {
                if errno == EINTR || errno == ENOMEM { continue }
                throw .system(operation: "poll (API server)", errno: Errno(rawValue: errno))
            }
            if fds[0].revents != 0 { return }   // stop requested (or the stop fd is broken)
            now = monotonicNanoseconds()

            for (i, c) in connections.enumerated() where fds[i + 2].revents != 0 {
                if c.wantsOutput {
                    c.writable(now: now, handler: handler)
                } else {
                    c.readable(into: scratch, now: now, handler: handler)
                }
            }
            for c in connections where !c.isClosed && c.phase != .idle && now &- c.since >= timeoutNanos {
                c.close()
            }
            connections.removeAll { $0.isClosed }   // before accepting: their slots are free
            if fds[1].revents != 0 {
                acceptPausedUntil = acceptAll(&connections, maxConnections, busy, now, scratch, handler)
            }
        }
    }

    /// Accepts what is waiting, closing idle connections to make room when full (never
    /// one accepted in this same call: it has had no chance to send). Returns when to poll
    /// the listening socket again: now, or in 100 ms when out of fds or memory (else the
    /// loop would spin on a readable socket).
    private func acceptAll(
        _ connections: inout [Connection], _ maxConnections: Int, _ busy: [UInt8], _ now: UInt64,
        _ scratch: UnsafeMutableRawBufferPointer, _ handler: (HTTPRequest) -> HTTPResponse
    ) -> UInt64 {
        let established = connections.count   // all open: the loop removed the closed ones
        var open = established
        for _ in 0..<(maxConnections + 1) {
            let fd = volt_accept_nonblocking(listeningFD)
            if fd >= 0 {
                if open >= maxConnections && makeRoom(connections[..<established], now, scratch, handler) {
                    open -= 1
                }
                if open < maxConnections {
                    connections.append(Connection(fd: fd, maxPayload: limits.maxPayload, now: now))
                    open += 1
                } else {
                    _ = busy.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL)) }
                    _ = Glibc.close(fd)
                }
                continue
            }
            switch -fd {
            case EAGAIN, EWOULDBLOCK: return 0
            case EINTR, ECONNABORTED, EPROTO, EPERM: continue   // that client is gone; next
            default: return now &+ 100_000_000                  // EMFILE, ENFILE, ENOBUFS, ENOMEM
            }
        }
        return 0
    }

    /// Closes the open connection of `candidates` that has been idle between requests the
    /// longest; false if none is idle. Each candidate gets one last read first: a request
    /// already in its socket buffer is served rather than reset (and the candidate, busy
    /// or idle only since now, goes to the back), and one that hung up frees its slot by
    /// itself. The closed connection has nothing unread, so its client sees a plain EOF.
    private func makeRoom(
        _ candidates: ArraySlice<Connection>, _ now: UInt64,
        _ scratch: UnsafeMutableRawBufferPointer, _ handler: (HTTPRequest) -> HTTPResponse
    ) -> Bool {
        while true {
            var oldest: Connection?
            for c in candidates where !c.isClosed && c.phase == .idle && c.since < (oldest?.since ?? .max) {
                oldest = c
            }
            guard let oldest else { return false }
            let idleSince = oldest.since
            oldest.readable(into: scratch, now: now, handler: handler)
            if oldest.isClosed { return true }
            if oldest.phase == .idle && oldest.since == idleSince {
                oldest.close()
                return true
            }
        }
    }

    private static func makeNonBlocking(_ fd: CInt) throws(APIServerError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .system(operation: "fcntl(F_SETFL, O_NONBLOCK) on fd \(fd)", errno: Errno(rawValue: errno))
        }
    }
}
