import IPC
/// `--net tap=NAME|bridge=BR[,mode=direct|networkd][,mac=MAC][,mtu=N][,queues=N][,id=ID][,vhost=on]`:
/// a NIC served by a volt-net-worker process that volt-vmm spawns for it.
///
/// - `tap=NAME`: an existing TAP the operator made (volt-vmm opens it, never creates it).
/// - `bridge=BR`: volt-vmm creates a TAP for the VM (`tap-<id>`), makes it a port of BR and
///   deletes it when the VM ends. `mode=networkd` asks systemd-networkd to create it instead.
public struct NetSpec: Equatable {
    enum Host: Equatable {
        case tap(String)
        case bridge(String, mode: BridgeMode)
    }

    enum BridgeMode: String, Equatable {
        /// volt-vmm creates the TAP itself (TUNSETIFF) and attaches it (SIOCBRADDIF).
        case direct
        /// volt-vmm writes .netdev/.network units and lets systemd-networkd create it.
        case networkd
    }

    var host: Host
    var mac: MACAddress?
    var mtu: Int?
    var queues = 1
    /// The NIC's name within the VM (`id=`): used for its TAP name instead of the VM id.
    var id: String?
    /// `vhost=on`: try in-kernel vhost-net first (falls back to the worker).
    var vhost = false
    /// `--fault net<i>:...` given for this NIC: the worker's `--fault` values.
    var faults: [FaultSpec] = []

    static let keys: Set<String> = ["tap", "bridge", "mode", "mac", "mtu", "queues", "id", "vhost"]
    /// `tap-` + id must fit IFNAMSIZ-1 (15 bytes).
    static let maxNICIDLength = 11

    init(host: Host, mac: MACAddress? = nil, mtu: Int? = nil, queues: Int = 1, id: String? = nil, vhost: Bool = false) {
        self.host = host
        self.mac = mac
        self.mtu = mtu
        self.queues = queues
        self.id = id
        self.vhost = vhost
    }

    init(tap: String, mac: MACAddress? = nil, mtu: Int? = nil, queues: Int = 1) {
        self.init(host: .tap(tap), mac: mac, mtu: mtu, queues: queues)
    }

    /// The existing TAP's name for `tap=`; nil for bridge mode.
    var tap: String? {
        if case let .tap(name) = host { return name }
        return nil
    }

    var bridge: String? {
        if case let .bridge(name, _) = host { return name }
        return nil
    }

    public init(parsing text: String) throws {
        let option = try KeyValueOption(flag: "--net", text: text, allowedKeys: Self.keys)
        switch (option.string("tap"), option.string("bridge")) {
        case (.some, .some):
            throw ConfigError.tapAndBridge(text)
        case (nil, nil):
            throw ConfigError.noTapOrBridge(text)
        case (.some, nil):
            let tap = try option.required("tap")
            guard tap.utf8.count < 16 else { throw ConfigError.interfaceNameTooLong(key: "tap", name: tap) }
            guard option.string("mode") == nil else {
                throw ConfigError.modeWithoutBridge(text)
            }
            guard option.string("id") == nil else {
                throw ConfigError.idWithoutBridge(text)
            }
            host = .tap(tap)
        case (nil, .some):
            let bridge = try option.required("bridge")
            guard bridge.utf8.count < 16 else { throw ConfigError.interfaceNameTooLong(key: "bridge", name: bridge) }
            let modeText = option.string("mode") ?? BridgeMode.direct.rawValue
            guard let mode = BridgeMode(rawValue: modeText) else {
                throw ConfigError.unknownBridgeMode(modeText)
            }
            host = .bridge(bridge, mode: mode)
        }
        if let nicID = option.string("id") {
            guard VMID.isValid(nicID, maxLength: Self.maxNICIDLength) else {
                throw ConfigError.invalidNICID(nicID)
            }
            id = nicID
        }
        if let text = option.string("mac") {
            guard let mac = MACAddress(text) else { throw ConfigError.invalidMAC(text) }
            guard mac.isUnicast else { throw ConfigError.multicastMAC(text) }
            self.mac = mac
        }
        if option.string("mtu") != nil { mtu = try option.int("mtu", default: 1500, range: 68...65535) }
        queues = try option.int("queues", default: 1, range: 1...16)
        vhost = try option.bool("vhost", default: false)
    }
}

/// An Ethernet MAC address.
struct MACAddress: Hashable, CustomStringConvertible {
    let bytes: [UInt8]

    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let b = UInt8(part, radix: 16) else { return nil }
            bytes.append(b)
        }
        self.bytes = bytes
    }

    init(bytes: [UInt8]) {
        precondition(bytes.count == 6)
        self.bytes = bytes
    }

    var isUnicast: Bool { bytes[0] & 1 == 0 }
    /// Bit 1 of the first byte: assigned locally, not by a vendor (IEEE 802).
    var isLocallyAdministered: Bool { bytes[0] & 2 != 0 }

    var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: ":")
    }
}
