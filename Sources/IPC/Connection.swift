import CShim
import Glibc
import SystemPackage

/// One message as read off the socket, before validation. `fds` are owned: dropping the
/// message closes them.
public struct ReceivedMessage: Sendable {
    public let header: MessageHeader
    public let payload: [UInt8]
    public let fds: [OwnedFD]
}

/// A blocking SOCK_STREAM Unix-socket connection carrying vhost-user messages.
/// Framing: the 12-byte header (fds arrive with it, as SCM_RIGHTS), then exactly
/// `header.size` payload bytes. Not safe for concurrent use from several threads.
public final class Connection: Sendable {
    public let socket: OwnedFD

    /// Takes ownership of a connected stream socket.
    public init(adopting socket: OwnedFD) { self.socket = socket }

    /// The `--fd=N` backend convention: adopt an inherited, already-connected socket.
    /// Checks that it is a socket and marks it close-on-exec.
    public static func adoptInherited(fd: CInt) throws(VhostUserError) -> Connection {
        guard fd >= 0 else { throw .invalidArgument("fd \(fd)") }
        let isSocket = try retryingOnInterrupt("fstat(--fd)") { volt_fd_is_socket(fd) }
        guard isSocket == 1 else { throw .invalidArgument("fd \(fd) is not a socket") }
        _ = try retryingOnInterrupt("fcntl(FD_CLOEXEC)") { volt_set_cloexec(fd) }
        return Connection(adopting: OwnedFD(taking: fd))
    }

    /// Front-end side: connect to a back-end listening on `path`.
    public static func connect(path: String) throws(VhostUserError) -> Connection {
        let fd = try retryingOnInterrupt("connect(\(path))") { volt_unix_connect(path) }
        return Connection(adopting: OwnedFD(taking: fd))
    }

    /// Two connected ends (e.g. VMM side and the end passed to a worker with --fd).
    public static func pair() throws(VhostUserError) -> (Connection, Connection) {
        var fds: [CInt] = [-1, -1]
        _ = try retryingOnInterrupt("socketpair") { volt_socketpair_stream(&fds) }
        return (Connection(adopting: OwnedFD(taking: fds[0])), Connection(adopting: OwnedFD(taking: fds[1])))
    }

    /// Sends header + payload with `fds` attached to the first byte. The fds are borrowed:
    /// the kernel duplicates them into the peer; the caller still owns its copies.
    public func send(_ header: MessageHeader, payload: [UInt8] = [], fds: [FileDescriptor] = []) throws(VhostUserError) {
        guard Int(header.size) == payload.count else {
            throw .invalidArgument("header size \(header.size) != payload \(payload.count)")
        }
        guard fds.count <= VhostUser.maxFds else { throw .invalidArgument("\(fds.count) fds (max \(VhostUser.maxFds))") }
        let bytes = header.encode() + payload
        var rawFds = fds.map(\.rawValue)
        var sent = 0
        while sent < bytes.count {
            let attach = sent == 0 ? rawFds.count : 0
            let n = try retryingOnInterrupt("sendmsg") {
                bytes.withUnsafeBytes { buf in
                    volt_sendmsg_fds(socket.rawValue, buf.baseAddress! + sent, buf.count - sent, &rawFds, CInt(attach))
                }
            }
            sent += Int(n)
        }
    }

    /// Reads one message. Clean EOF before a header → `.disconnected`. A size above
    /// `maxPayload` → `.payloadTooLarge` without reading the payload (the stream is then
    /// out of sync: close the connection). Any fds received are closed on every error path.
    public func receive(maxPayload: Int = VhostUser.maxPayloadSize) throws(VhostUserError) -> ReceivedMessage {
        var fds: [OwnedFD] = []
        let headerBytes = try readExactly(MessageHeader.size, fds: &fds, fdsAllowed: true)
        let header: MessageHeader
        do { header = try MessageHeader.decode(from: headerBytes) } catch { throw .truncatedMessage(received: headerBytes.count, expected: MessageHeader.size) }
        guard Int(header.size) <= maxPayload else { throw .payloadTooLarge(request: header.request, size: header.size) }
        let payload = try readExactly(Int(header.size), fds: &fds, fdsAllowed: false)
        return ReceivedMessage(header: header, payload: payload, fds: fds)
    }

    /// Shuts the socket down both ways (wakes a thread blocked in `receive`).
    public func shutdown() { _ = Glibc.shutdown(socket.rawValue, CInt(SHUT_RDWR)) }

    private func readExactly(_ count: Int, fds: inout [OwnedFD], fdsAllowed: Bool) throws(VhostUserError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            var raw = [CInt](repeating: -1, count: Int(VOLT_SOCKET_MAX_FDS))
            var nfds: CInt = 0
            let r = buffer.withUnsafeMutableBytes { buf in
                volt_recvmsg_fds(socket.rawValue, buf.baseAddress! + got, count - got, &raw, &nfds)
            }
            // Own every received fd before deciding anything else.
            fds.append(contentsOf: raw.prefix(Int(max(nfds, 0))).map { OwnedFD(taking: $0) })
            if r == -EINTR { continue }
            if r == -VOLT_ECTRUNC { throw .tooManyFds }
            if r < 0 { throw .system(operation: "recvmsg", errno: -r) }
            if nfds > 0 && !fdsAllowed { throw .fdsOutsideHeader }
            if fds.count > VhostUser.maxFds { throw .tooManyFds }
            if r == 0 {
                if fdsAllowed && got == 0 && fds.isEmpty { throw .disconnected }
                throw .truncatedMessage(received: got, expected: count)
            }
            got += Int(r)
        }
        return buffer
    }
}
