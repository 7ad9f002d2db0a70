import Foundation
import NetTestShim
import Testing

/// A network namespace made for one test (`volt-nwt-<pid>-<n>`) with a TAP `vt0` inside,
/// up, IPv6 off (no stray router solicitations). `delete()` removes it with everything in
/// it; call it from a `defer` right after creation.
public final class NetNamespace: @unchecked Sendable {
    private static let counter = NSLock()
    nonisolated(unsafe) private static var next = 0

    public let name: String
    public let tap = "vt0"

    public init(multiQueue: Bool = false, address: String? = nil) throws {
        let n = Self.counter.withLock { Self.next += 1; return Self.next }
        name = "volt-nwt-\(getpid())-\(n)"
        try ip(["netns", "add", name])
        do {
            try exec(["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
            try exec(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"] + (multiQueue ? ["multi_queue"] : []))
            if let address { try exec(["ip", "addr", "add", address, "dev", tap]) }
            try exec(["ip", "link", "set", tap, "up"])
        } catch {
            delete()
            throw error
        }
    }

    public static var available: Bool {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
    }

    public func delete() {
        _ = try? TestEnvironment.run("/usr/sbin/ip", ["netns", "del", name], timeout: 10)
    }

    public struct CommandFailed: Error, CustomStringConvertible {
        let command: [String]
        let result: TestEnvironment.Result
        public var description: String { "\(command.joined(separator: " ")) failed: \(result.status) \(result.stderr)" }
    }

    private func ip(_ args: [String]) throws {
        let r = try TestEnvironment.run("/usr/sbin/ip", args, timeout: 10)
        if r.status != 0 { throw CommandFailed(command: ["ip"] + args, result: r) }
    }

    /// Runs a command inside the namespace and waits for it.
    @discardableResult
    public func exec(_ args: [String], timeout: Double = 10) throws -> TestEnvironment.Result {
        let r = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", name] + args, timeout: timeout)
        if r.status != 0 { throw CommandFailed(command: args, result: r) }
        return r
    }

    public struct SetnsFailed: Error { public let errno: Int32 }

    /// Runs `body` on a fresh thread that has entered the namespace (the TAP and sockets it
    /// opens belong there; the test's own threads are not moved).
    public func inside<T>(_ body: @escaping () throws -> T) throws -> T {
        nonisolated(unsafe) var result: Result<T, Error>?
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            let r = nts_enter_netns(path)
            result = r < 0 ? .failure(SetnsFailed(errno: -r)) : Result { try body() }
            done.signal()
        }
        thread.start()
        done.wait()
        return try result!.get()
    }

    /// guests/tools/net_peer.py on the namespace's TAP, ready to send and receive.
    public func peer(_ args: [String]) throws -> Background {
        let peer = try Background("/usr/sbin/ip", ["netns", "exec", name, "python3",
                                                   TestEnvironment.repositoryRoot.appendingPathComponent("guests/tools/net_peer.py").path,
                                                   tap] + args)
        #expect(peer.waitFor("ready", timeout: 10))
        return peer
    }
}
