import IPC

/// A drive (Firecracker's Drive): a raw image served by a spawned volt-blk-worker
/// (`path_on_host`), or an external vhost-user-blk back-end (`socket`).
public struct DriveConfig: Equatable {
    public enum Backend: Equatable {
        case image(DiskSpec)
        case vhostUser(socket: String)
    }

    public var id: String
    public var backend: Backend
    public var isRootDevice: Bool
    public var partuuid: String?
    /// "Unsafe" or "Writeback": both honour FLUSH here (volt-blk-worker always does).
    public var cacheType = "Unsafe"
    /// "Sync" or "Async": accepted, the worker's I/O is the same either way.
    public var ioEngine = "Sync"

    public init(id: String, backend: Backend, isRootDevice: Bool = false) {
        self.id = id; self.backend = backend; self.isRootDevice = isRootDevice
    }

    static let keys: Set<String> = ["drive_id", "path_on_host", "is_root_device", "is_read_only", "partuuid", "cache_type",
                                    "io_engine", "rate_limiter", "socket"]
    static let patchKeys: Set<String> = ["drive_id", "path_on_host", "rate_limiter"]

    static func read(_ r: ConfigReader, _ f: [String: JSONValue], id: String?, _ path: String = "") -> DriveConfig? {
        let driveID = r.string(f, "drive_id", path)
        if let id, let driveID, driveID != id {
            r.problem(join(path, "drive_id"), "The id from the path does not match the id from the body! (\"\(id)\" and \"\(driveID)\")")
        }
        let root = r.bool(f, "is_root_device", path)
        if f["is_root_device"] == nil { r.problem(join(path, "is_root_device"), "required") }
        let readOnly = r.bool(f, "is_read_only", path) ?? false
        let image = r.string(f, "path_on_host", path), socket = r.string(f, "socket", path)
        var drive: DriveConfig?
        switch (image, socket) {
        case let (image?, nil):
            drive = DriveConfig(id: driveID ?? id ?? "", backend: .image(DiskSpec(path: image, readOnly: readOnly)), isRootDevice: root ?? false)
        case let (nil, socket?):
            if f["is_read_only"] != nil { r.problem(join(path, "is_read_only"), "leave it out for a vhost-user drive (the back-end decides)") }
            drive = DriveConfig(id: driveID ?? id ?? "", backend: .vhostUser(socket: socket), isRootDevice: root ?? false)
        case (.some, .some): r.problem(path.isEmpty ? "socket" : path, "give path_on_host or socket, not both")
        case (nil, nil): r.problem(join(path, "path_on_host"), "required (or socket, for a vhost-user back-end)")
        }
        if driveID == nil && id == nil { r.problem(join(path, "drive_id"), "required") }
        if let cache = r.string(f, "cache_type", path) {
            if ["Unsafe", "Writeback"].contains(cache) { drive?.cacheType = cache } else {
                r.problem(join(path, "cache_type"), "\"\(cache)\" is not Unsafe or Writeback")
            }
        }
        if let engine = r.string(f, "io_engine", path) {
            if ["Sync", "Async"].contains(engine) { drive?.ioEngine = engine } else {
                r.problem(join(path, "io_engine"), "\"\(engine)\" is not Sync or Async")
            }
        }
        drive?.partuuid = r.string(f, "partuuid", path)
        if RateLimiterConfig.read(r, f["rate_limiter"], join(path, "rate_limiter"))?.isLimited == true {
            r.problem(join(path, "rate_limiter"), "drive rate limits are not supported (leave it out)")
        }
        return drive
    }

    var json: String {
        var fields: [(String, String?)] = [("drive_id", JSONText.string(id)), ("partuuid", JSONText.orNull(JSONText.string(partuuid))),
                                           ("is_root_device", JSONText.bool(isRootDevice)), ("cache_type", JSONText.string(cacheType))]
        switch backend {
        case let .image(disk):
            fields += [("is_read_only", JSONText.bool(disk.readOnly)), ("path_on_host", JSONText.string(disk.path)),
                       ("rate_limiter", "null"), ("io_engine", JSONText.string(ioEngine)), ("socket", "null")]
        case let .vhostUser(socket):
            fields += [("is_read_only", "null"), ("path_on_host", "null"), ("rate_limiter", "null"), ("io_engine", "null"),
                       ("socket", JSONText.string(socket))]
        }
        return JSONText.object(fields)
    }

    /// The device volt-vmm attaches for it.
    var device: VirtioDeviceSpec {
        switch backend {
        case let .image(disk): return .disk(disk)
        case let .vhostUser(socket): return .vhostUserBlock(socket: socket)
        }
    }
}

/// A network interface (Firecracker's NetworkInterface): an existing TAP served by a
/// spawned volt-net-worker. NICs from `--net` keep their whole spec (bridges included).
public struct NetworkInterfaceConfig: Equatable {
    public var id: String
    public var spec: NetSpec

    public init(id: String, spec: NetSpec) { self.id = id; self.spec = spec }

    static let keys: Set<String> = ["iface_id", "host_dev_name", "guest_mac", "mtu", "rx_rate_limiter", "tx_rate_limiter"]
    static let patchKeys: Set<String> = ["iface_id", "rx_rate_limiter", "tx_rate_limiter"]

    static func read(_ r: ConfigReader, _ f: [String: JSONValue], id: String?, _ path: String = "") -> NetworkInterfaceConfig? {
        let ifaceID = r.string(f, "iface_id", path)
        if let id, let ifaceID, ifaceID != id {
            r.problem(join(path, "iface_id"), "The id from the path does not match the id from the body! (\"\(id)\" and \"\(ifaceID)\")")
        }
        if ifaceID == nil && id == nil { r.problem(join(path, "iface_id"), "required") }
        let tap = r.string(f, "host_dev_name", path)
        if f["host_dev_name"] == nil { r.problem(join(path, "host_dev_name"), "required (an existing TAP: ip tuntap add NAME mode tap vnet_hdr)") }
        let mac = r.string(f, "guest_mac", path)
        let mtu = r.int(f, "mtu", path, range: 68...65535)
        for key in ["rx_rate_limiter", "tx_rate_limiter"] where RateLimiterConfig.read(r, f[key], join(path, key))?.isLimited == true {
            r.problem(join(path, key), "NIC rate limits are not supported (leave it out)")
        }
        guard let tap else { return nil }
        var text = "tap=\(tap)"
        if let mac { text += ",mac=\(mac)" }
        if let mtu { text += ",mtu=\(mtu)" }
        guard !tap.contains(","), !(mac ?? "").contains(",") else {
            r.problem(path.isEmpty ? "host_dev_name" : path, "names may not contain commas")
            return nil
        }
        do {
            return NetworkInterfaceConfig(id: ifaceID ?? id ?? "", spec: try NetSpec(parsing: text))
        } catch {
            r.problem(path.isEmpty ? "host_dev_name" : path, "\(error)")
            return nil
        }
    }

    var json: String {
        JSONText.object([("iface_id", JSONText.string(id)), ("host_dev_name", JSONText.string(spec.tap ?? spec.bridge.map { "bridge \($0)" })),
                         ("guest_mac", JSONText.orNull(JSONText.string(spec.mac?.description))), ("mtu", JSONText.int(spec.mtu)),
                         ("rx_rate_limiter", "null"), ("tx_rate_limiter", "null")])
    }
}
