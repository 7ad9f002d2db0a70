/// volt-vsock-worker's own options (the shared ones are `WorkerArguments`'), encoded by
/// volt-vmm and decoded by the worker. Names as vhost-device-vsock's users know them
/// (`--guest-cid`, `--uds-path`), plus what volt-vmm passes on a restart.
public struct VsockArguments: DeviceArguments {
    /// Lowest and highest guest CID: 0-2 are reserved (hypervisor, local, host) and
    /// 0xFFFFFFFF is VMADDR_CID_ANY; Linux keeps CIDs in 32 bits.
    public static let cidRange: ClosedRange<UInt64> = 3...0xFFFF_FFFE
    /// The longest `--uds-path`: `<uds_path>_4294967295` must fit sockaddr_un (108 bytes
    /// with its NUL).
    public static let maxUdsPathLength = 107 - "_4294967295".utf8.count

    public var guestCID: UInt64 = 0
    /// Firecracker's `uds_path`: host processes connect here and send `CONNECT <port>\n`;
    /// a guest connecting to CID 2 port P reaches `<udsPath>_P`.
    public var udsPath = ""
    /// An inherited socket already listening on `udsPath` (volt-vmm binds it once, so
    /// the listener outlives worker restarts); nil: the worker binds `udsPath` itself.
    public var udsFD: CInt?
    /// Send VIRTIO_VSOCK_EVENT_TRANSPORT_RESET once the event queue runs (a restarted
    /// worker or a restored VM: the guest's connections are gone).
    public var transportReset = false
    /// A host peer must send its `CONNECT <port>\n` line, and the guest answer a
    /// connection request, within this many milliseconds.
    public var connectTimeoutMs = 2000
    public var queueSize = 256

    public init() {}

    public init(guestCID: UInt64, udsPath: String, udsFD: CInt? = nil, transportReset: Bool = false) {
        self.guestCID = guestCID; self.udsPath = udsPath; self.udsFD = udsFD; self.transportReset = transportReset
    }

    public static var faultDevice: FaultSpec.Device { .vsock }

    public mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool {
        switch cursor.name {
        case "--guest-cid":
            let v = try cursor.value()
            guard let n = UInt64(v), Self.cidRange.contains(n) else {
                throw UsageError("--guest-cid \(v) is not a CID in 3...4294967294", fix: "pass the guest's CID, e.g. --guest-cid 3")
            }
            guestCID = n
        case "--uds-path": udsPath = try cursor.value()
        case "--uds-fd": udsFD = try cursor.fd()
        case "--transport-reset": try cursor.flag(); transportReset = true
        case "--connect-timeout-ms": connectTimeoutMs = try cursor.number(1...600_000)
        case "--queue-size": queueSize = try cursor.powerOfTwo(1...32768)
        default: return false
        }
        return true
    }

    public func validate() throws(UsageError) {
        guard guestCID != 0 else { throw UsageError("no --guest-cid", fix: "pass --guest-cid N (3 or more)") }
        guard udsPath.hasPrefix("/") else {
            throw UsageError("--uds-path '\(udsPath)' is not an absolute path", fix: "pass --uds-path /absolute/path/to/v.sock")
        }
        guard udsPath.utf8.count <= Self.maxUdsPathLength, !udsPath.hasSuffix("/") else {
            throw UsageError("--uds-path '\(udsPath)' is too long or names a directory",
                             fix: "use a socket path of at most \(Self.maxUdsPathLength) bytes (so <path>_PORT fits a Unix socket address)")
        }
    }

    public func encode() -> [String] {
        var out = ["--guest-cid", "\(guestCID)", "--uds-path", udsPath]
        if let udsFD { out += ["--uds-fd", "\(udsFD)"] }
        if transportReset { out.append("--transport-reset") }
        if connectTimeoutMs != 2000 { out += ["--connect-timeout-ms", "\(connectTimeoutMs)"] }
        if queueSize != 256 { out += ["--queue-size", "\(queueSize)"] }
        return out
    }
}
