/// `--net tap=NAME[,mac=MAC][,mtu=N][,queues=N]`: an existing TAP device served by a
/// volt-net-worker process that volt-vmm spawns for it.
struct NetSpec: Equatable {
    var tap: String
    var mac: MACAddress?
    var mtu: Int?
    var queues = 1

    static let keys: Set<String> = ["tap", "mac", "mtu", "queues"]

    init(tap: String, mac: MACAddress? = nil, mtu: Int? = nil, queues: Int = 1) {
        self.tap = tap
        self.mac = mac
        self.mtu = mtu
        self.queues = queues
    }

    init(parsing text: String) throws {
        let option = try KeyValueOption(flag: "--net", text: text, allowedKeys: Self.keys)
        tap = try option.required("tap")
        guard tap.utf8.count < 16 else { throw RunError.usage("--net tap=\(tap): interface names are at most 15 bytes") }
        if let text = option.string("mac") {
            guard let mac = MACAddress(text) else { throw RunError.usage("--net mac=\(text): not a MAC address (like 52:54:00:12:34:56)") }
            guard mac.isUnicast else { throw RunError.usage("--net mac=\(text): a NIC needs a unicast address (first byte even)") }
            self.mac = mac
        }
        if option.string("mtu") != nil { mtu = try option.int("mtu", default: 1500, range: 68...65535) }
        queues = try option.int("queues", default: 1, range: 1...16)
    }
}

/// An Ethernet MAC address.
struct MACAddress: Equatable, CustomStringConvertible {
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

    var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: ":")
    }
}
