import Glibc
import SystemPackage

/// `volt-vmm run --config vm.json`: the seed design's schema.
///
/// ```json
/// { "id": "web1", "vcpus": 2, "memory_mib": 512, "kernel": "vmlinux", "cmdline": "...", "initrd": "...",
///   "disks":   [{ "id": "root", "path": "rootfs.img", "readonly": false, "direct": false, "queues": 1, "serial": "..." }],
///   "network": [{ "id": "eth0", "mode": "networkd", "bridge": "br0", "mac": "52:54:00:12:34:56",
///                 "mtu": 1500, "vhost": true, "multiqueue": 4, "ipv4": "10.42.0.10/24", "gateway": "10.42.0.1" }],
///   "entropy": { "rate": 65536, "burst": 1048576, "ops": 100 } }
/// ```
/// Devices become the same specs as `--disk` / `--net` (one validation path for both);
/// every problem is reported at once with its JSON path; nothing is created before the
/// whole file is valid.
public struct VMConfigFile: Equatable {
    public var id: String?
    public var vcpus: Int?
    public var memoryMiB: UInt64?
    public var kernel: String?
    public var cmdline: String?
    public var initrd: String?
    public var disks: [DiskSpec] = []
    /// `--net`-style specs, one per network entry.
    public var networks: [String] = []
    /// Kernel `ip=` argument for the one interface with a static address, if any.
    public var kernelIPArgument: String?
    /// The virtio-rng device (`"entropy": {}` for one without a rate limit).
    public var entropy: EntropySpec?

    public init() {}

    static let topKeys: Set<String> = ["id", "vcpus", "memory_mib", "kernel", "cmdline", "initrd", "disks", "network", "entropy"]
    static let entropyKeys: Set<String> = ["rate", "burst", "ops"]
    static let diskKeys: Set<String> = ["id", "path", "readonly", "direct", "queues", "serial"]
    static let networkKeys: Set<String> = ["id", "mode", "tap", "bridge", "mac", "mtu", "vhost", "multiqueue", "ipv4", "gateway"]
    static let maxVCPUs = MPTable.maxCPUs

    public static func load(path: String) throws -> VMConfigFile {
        try parse(try read(path: path), file: path)
    }

    /// A config file's bytes (at most 1 MiB).
    static func read(path: String) throws -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        } catch {
            throw ConfigError.configUnopenable(path: path, error as? Errno ?? .ioError)
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 1 << 20 else { throw ConfigError.configTooLarge(path: path) }
        }
        return bytes
    }

    static func parse(_ bytes: [UInt8], file: String) throws -> VMConfigFile {
        let root: JSONValue
        do {
            root = try JSONValue.parse(bytes)
        } catch {
            throw ConfigError.configNotJSON(file: file, reason: "\(error)")
        }
        let reader = ConfigReader()
        var config = VMConfigFile()
        guard let top = reader.object(root, "", allowed: topKeys) else {
            throw ConfigProblems(file: file, problems: reader.problems)
        }
        config.id = reader.string(top, "id", "")
        if let id = config.id, !isValidID(id) {
            reader.problem("id", "\"\(id)\" must be 1-\(VMID.maxLength) characters of a-z, A-Z, 0-9, _ and -")
        }
        config.vcpus = reader.int(top, "vcpus", "", range: 1...maxVCPUs)
        config.memoryMiB = reader.int(top, "memory_mib", "", range: Int(Layout.minimumMemory >> 20)...(1 << 22)).map(UInt64.init)
        config.kernel = reader.string(top, "kernel", "")
        config.cmdline = reader.string(top, "cmdline", "")
        config.initrd = reader.string(top, "initrd", "")

        var ids: [String: String] = [:]
        func claim(_ id: String?, _ path: String) {
            guard let id else { return }
            if let first = ids[id] { reader.problem("\(path).id", "\"\(id)\" is already used by \(first)") } else { ids[id] = path }
        }
        for (i, item) in reader.array(top, "disks", "").enumerated() {
            let path = "disks[\(i)]"
            guard let d = reader.object(item, path, allowed: diskKeys) else { continue }
            claim(reader.string(d, "id", path), path)
            // Read every field first so all of this entry's problems are reported.
            let image = reader.string(d, "path", path)
            let readOnly = reader.bool(d, "readonly", path) == true
            let direct = reader.bool(d, "direct", path) == true
            let queues = reader.int(d, "queues", path, range: 1...16)
            let serial = reader.string(d, "serial", path)
            guard let image else {
                if d["path"] == nil { reader.problem("\(path).path", "required") }
                continue
            }
            guard !image.contains(","), !(serial ?? "").contains(",") else {
                reader.problem(path, "paths and serials may not contain commas")
                continue
            }
            var spec = "path=\(image)"
            if readOnly { spec += ",ro=on" }
            if direct { spec += ",direct=on" }
            if let queues { spec += ",queues=\(queues)" }
            if let serial { spec += ",serial=\(serial)" }
            do { config.disks.append(try DiskSpec(parsing: spec)) } catch { reader.problem(path, stripFlag("\(error)")) }
        }

        if let item = top["entropy"], let e = reader.object(item, "entropy", allowed: entropyKeys) {
            let parts = [("rate", reader.int(e, "rate", "entropy", range: 1...(1 << 30))),
                         ("burst", reader.int(e, "burst", "entropy", range: 0...(1 << 30))),
                         ("ops", reader.int(e, "ops", "entropy", range: 1...1_000_000))].compactMap { k, v in v.map { "\(k)=\($0)" } }
            do { config.entropy = try EntropySpec(parsing: parts.isEmpty ? "on" : parts.joined(separator: ",")) } catch {
                reader.problem("entropy", stripFlag("\(error)"))
            }
        }

        var macs: [String: String] = [:], taps: [String: String] = [:]
        for (i, item) in reader.array(top, "network", "").enumerated() {
            let path = "network[\(i)]"
            guard let n = reader.object(item, path, allowed: networkKeys) else { continue }
            claim(reader.string(n, "id", path), path)
            if let spec = networkSpec(n, path, reader) {
                do {
                    let parsed = try NetSpec(parsing: spec)
                    if let mac = parsed.mac?.description {
                        if let first = macs[mac] { reader.problem("\(path).mac", "\(mac) is already used by \(first)") } else { macs[mac] = path }
                    }
                    if let tap = parsed.tap {
                        if let first = taps[tap] { reader.problem("\(path).tap", "\(tap) is already used by \(first)") } else { taps[tap] = path }
                    }
                    config.networks.append(spec)
                } catch {
                    reader.problem(path, stripFlag("\(error)"))
                }
            }
            if let ip = kernelIP(n, path, reader, interface: "eth\(i)") {
                if config.kernelIPArgument != nil {
                    reader.problem("\(path).ipv4", "only one interface can take its address from the kernel's ip= argument")
                } else {
                    config.kernelIPArgument = ip
                }
            }
        }
        guard reader.problems.isEmpty else { throw ConfigProblems(file: file, problems: reader.problems) }
        return config
    }

    /// The `--net` spec for a network entry (mode tap uses an existing TAP).
    private static func networkSpec(_ n: [String: JSONValue], _ path: String, _ reader: ConfigReader) -> String? {
        let mode = reader.string(n, "mode", path) ?? "tap"
        var spec: String
        switch mode {
        case "tap":
            guard let tap = reader.string(n, "tap", path) else {
                reader.problem("\(path).tap", "required when mode is \"tap\"")
                return nil
            }
            spec = "tap=\(tap)"
        case "bridge", "networkd":
            guard let bridge = reader.string(n, "bridge", path) else {
                reader.problem("\(path).bridge", "required when mode is \"\(mode)\"")
                return nil
            }
            spec = "bridge=\(bridge)" + (mode == "networkd" ? ",mode=networkd" : "")
            // The entry's id names its TAP (tap-<id>) when it fits.
            if let id = reader.string(n, "id", path), id.utf8.count <= NetSpec.maxNICIDLength, isValidID(id) {
                spec += ",id=\(id)"
            }
        default:
            reader.problem("\(path).mode", "\"\(mode)\" is not one of tap, bridge, networkd")
            return nil
        }
        if let mac = reader.string(n, "mac", path) {
            guard MACAddress(mac) != nil else {
                reader.problem("\(path).mac", "\"\(mac)\" is not a MAC address")
                return nil
            }
            spec += ",mac=\(mac)"
        }
        if let mtu = reader.int(n, "mtu", path, range: 68...65535) { spec += ",mtu=\(mtu)" }
        if let q = reader.int(n, "multiqueue", path, range: 1...16) { spec += ",queues=\(q)" }
        if reader.bool(n, "vhost", path) == true { spec += ",vhost=on" }
        return spec
    }

    /// `ip=<client>::<gateway>:<netmask>::<device>:off` (Documentation/admin-guide/nfs/nfsroot.rst).
    private static func kernelIP(_ n: [String: JSONValue], _ path: String, _ reader: ConfigReader, interface: String) -> String? {
        let gateway = reader.string(n, "gateway", path)
        guard let cidr = reader.string(n, "ipv4", path) else {
            if gateway != nil { reader.problem("\(path).gateway", "needs ipv4 as well") }
            return nil
        }
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let address = IPv4(String(parts[0])), let prefix = Int(parts[1]), (0...32).contains(prefix) else {
            reader.problem("\(path).ipv4", "\"\(cidr)\" is not an IPv4 address with a prefix length (like 10.42.0.10/24)")
            return nil
        }
        var gw = ""
        if let gateway {
            guard IPv4(gateway) != nil else {
                reader.problem("\(path).gateway", "\"\(gateway)\" is not an IPv4 address")
                return nil
            }
            gw = gateway
        }
        return "ip=\(address)::\(gw):\(IPv4(netmaskPrefix: prefix))::\(interface):off"
    }

    static func isValidID(_ id: String) -> Bool { VMID.isValid(id, maxLength: VMID.maxLength) }

    /// "--disk path=x: message" -> "path=x: message": the JSON path replaces the flag.
    private static func stripFlag(_ message: String) -> String {
        guard message.hasPrefix("--"), let space = message.firstIndex(of: " ") else { return message }
        return String(message[message.index(after: space)...])
    }
}

/// A dotted-quad IPv4 address.
struct IPv4: CustomStringConvertible {
    let value: UInt32

    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard let b = UInt8(p), String(b) == p else { return nil }
            v = v << 8 | UInt32(b)
        }
        value = v
    }

    init(netmaskPrefix prefix: Int) {
        value = prefix == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix))
    }

    var description: String {
        (0..<4).map { String((value >> (24 - 8 * UInt32($0))) & 0xff) }.joined(separator: ".")
    }
}
