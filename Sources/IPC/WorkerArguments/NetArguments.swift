/// volt-net-worker's own options (the shared ones are `WorkerArguments`'), encoded by
/// volt-vmm and decoded by the worker.
public struct NetArguments: DeviceArguments {
    public enum Taps: Equatable, Sendable {
        /// A TAP the worker opens by name (standalone use; needs CAP_NET_ADMIN).
        case name(String)
        /// TAP queue fds the caller opened, one per queue pair.
        case fds([CInt])
    }

    public var taps: Taps?
    public var mac: [UInt8]?
    public var mtu: UInt16?
    /// Queue pairs; nil = one per `--tap-fd` (or 1 with `--tap`).
    public var queuePairs: Int?
    public var queueSize = 1024

    public init() {}

    public init(taps: Taps, mac: [UInt8]? = nil, mtu: UInt16? = nil, queuePairs: Int? = nil) {
        self.taps = taps; self.mac = mac; self.mtu = mtu; self.queuePairs = queuePairs
    }

    public static var faultDevice: FaultSpec.Device { .net }

    /// Queue pairs the device serves.
    public var pairs: Int {
        if let queuePairs { return queuePairs }
        if case let .fds(fds)? = taps { return max(fds.count, 1) }
        return 1
    }

    public mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool {
        switch cursor.name {
        case "--tap":
            let v = try cursor.value()
            guard !v.isEmpty, v.utf8.count <= 15 else { throw UsageError("--tap '\(v)' is not an interface name", fix: "pass a name of 1 to 15 bytes") }
            if case .fds? = taps { throw UsageError("--tap and --tap-fd are exclusive", fix: "pass one of them") }
            taps = .name(v)
        case "--tap-fd":
            let fd = try cursor.fd()
            switch taps {
            case .name?: throw UsageError("--tap and --tap-fd are exclusive", fix: "pass one of them")
            case let .fds(list)?: taps = .fds(list + [fd])
            case nil: taps = .fds([fd])
            }
        case "--mac": mac = try Self.parseMAC(try cursor.value())
        case "--mtu": mtu = UInt16(try cursor.number(68...65535))
        case "--num-queue-pairs": queuePairs = try cursor.number(1...64)
        case "--queue-size": queueSize = try cursor.powerOfTwo(1...32768)
        default: return false
        }
        return true
    }

    public func validate() throws(UsageError) {
        switch taps {
        case nil: throw UsageError("no TAP device", fix: "pass --tap NAME or --tap-fd N")
        case let .fds(fds)?:
            guard fds.count == pairs else {
                throw UsageError("\(fds.count) --tap-fd for \(pairs) queue pairs", fix: "pass one --tap-fd per queue pair")
            }
        case .name?: break
        }
    }

    public func encode() -> [String] {
        var out: [String] = []
        switch taps {
        case let .name(n)?: out += ["--tap", n]
        case let .fds(fds)?: for fd in fds { out += ["--tap-fd", "\(fd)"] }
        case nil: break
        }
        if let queuePairs { out += ["--num-queue-pairs", "\(queuePairs)"] }
        if queueSize != 1024 { out += ["--queue-size", "\(queueSize)"] }
        if let mac { out += ["--mac", Self.text(mac: mac)] }
        if let mtu { out += ["--mtu", "\(mtu)"] }
        return out
    }

    public static func parseMAC(_ text: String) throws(UsageError) -> [UInt8] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else {
            throw UsageError("--mac \(text) is not a MAC address", fix: "write six hex pairs, e.g. 52:54:00:12:34:56")
        }
        guard bytes[0] & 1 == 0 else { throw UsageError("--mac \(text) is a multicast address", fix: "use an address whose first byte is even, e.g. 52:54:00:...") }
        return bytes
    }

    static func text(mac: [UInt8]) -> String {
        mac.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: ":")
    }
}
