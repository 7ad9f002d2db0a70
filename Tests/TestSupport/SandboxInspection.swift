import Foundation

/// Looks at a running worker from outside (/proc) and speaks just enough vhost-user to
/// move it past its sandbox point. Shared by BlockWorkerTests and NetWorkerTests.
public enum SandboxInspection {
    /// What /proc/PID/status must say of a jailed worker.
    public static let jailedStatus: [(String, String)] = [
        ("Seccomp", "2"), ("NoNewPrivs", "1"),
        ("CapInh", "0000000000000000"), ("CapPrm", "0000000000000000"), ("CapEff", "0000000000000000"),
        ("CapBnd", "0000000000000000"), ("CapAmb", "0000000000000000"),
    ]

    /// "Key: value" lines of /proc/PID/status.
    public static func status(_ pid: pid_t) -> [String: String] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// readlink /proc/PID/ns/KIND, e.g. "net:[4026531840]".
    public static func namespace(_ kind: String, of pid: pid_t) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
    }

    /// The "net:[INODE]" name of a named network namespace (/run/netns/NAME).
    public static func namedNetworkNamespace(_ name: String) -> String? {
        var st = stat()
        guard stat("/run/netns/\(name)", &st) == 0 else { return nil }
        return "net:[\(st.st_ino)]"
    }

    /// The soft limit column of /proc/PID/limits for a row such as "Max open files".
    public static func softLimit(_ row: String, of pid: pid_t) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8) else { return nil }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(row) }) else { return nil }
        return line.dropFirst(row.count).split(separator: " ").first.map(String.init)
    }

    /// Everything that differs from a jailed worker: status fields, namespaces still
    /// shared with `reference` (kind -> the name the worker must not have), a root
    /// directory that is not empty, core dumps allowed. Empty when the jail is complete.
    public static func jailProblems(pid: pid_t, reference: [String: String]) -> [String] {
        var problems: [String] = []
        let st = status(pid)
        for (key, want) in jailedStatus where st[key] != want {
            problems.append("\(key): \(st[key] ?? "missing"), want \(want)")
        }
        for (kind, outer) in reference.sorted(by: { $0.key < $1.key }) {
            let inner = namespace(kind, of: pid)
            if inner == nil || inner == outer { problems.append("ns/\(kind) \(inner ?? "unreadable") is the outer one") }
        }
        // The root is an empty tmpfs: /proc/PID/root lists nothing.
        switch Result(catching: { try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root") }) {
        case let .success(entries) where !entries.isEmpty: problems.append("root has \(entries.sorted().prefix(5))")
        case let .failure(error): problems.append("root unreadable: \(error)")
        default: break
        }
        if softLimit("Max core file size", of: pid) != "0" { problems.append("core dumps allowed") }
        return problems
    }

    /// The test's end of a vhost-user connection; closed once (a second close could hit
    /// an fd another test running in parallel has been given since).
    public final class Peer {
        public private(set) var fd: Int32
        init(_ fd: Int32) { self.fd = fd }
        public func close() {
            if fd >= 0 { _ = Foundation.close(fd); fd = -1 }
        }
        deinit { close() }
    }

    /// Connects to a worker listening on `path`, waiting up to `timeout` seconds.
    public static func connect(_ path: String, timeout: Double = 10) -> Peer? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            }
            let r = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if r == 0 { return Peer(fd) }
            close(fd)
            usleep(10_000)
        }
        return nil
    }

    /// Header-only vhost-user request (version 1 flags, no payload).
    @discardableResult
    public static func send(_ peer: Peer, request: UInt32) -> Bool {
        var header: [UInt32] = [request, 1, 0]
        return write(peer.fd, &header, 12) == 12
    }

    /// GET_FEATURES (1), then waits for its 20-byte reply: the worker is past its
    /// sandbox point and serving.
    public static func handshake(_ peer: Peer, timeout: Double = 10) -> Bool {
        guard send(peer, request: 1) else { return false }
        let fd = peer.fd
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var reply = [UInt8](repeating: 0, count: 20)
        var got = 0
        while got < 20 {
            let n = reply.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, 20 - got) }
            if n <= 0 { return false }
            got += n
        }
        return reply[0] == 1
    }

    public static let setOwner: UInt32 = 3
}
