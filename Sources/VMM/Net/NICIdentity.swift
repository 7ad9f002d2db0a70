/// Host-side names and MAC addresses of a VM's NICs.
///
/// - TAP names: `tap-<NIC id>` when `--net id=` was given, else `tap-<VM id>` with `-<index>`
///   appended when the VM has several NICs. A VM id too long for IFNAMSIZ keeps its first
///   characters plus 4 hex digits of a hash of the whole id, so two long ids sharing a
///   prefix still differ.
/// - MACs: locally administered unicast (first byte: bit 1 set, bit 0 clear). With `--id`,
///   derived from a hash of the VM id and the NIC index, so a VM keeps its MACs across
///   runs; without it, random.
enum NICIdentity {
    static let tapPrefix = "tap-"
    /// IFNAMSIZ - 1.
    static let maxInterfaceName = 15

    static func tapName(vmID: String, nicID: String?, index: Int, count: Int) -> String {
        if let nicID { return tapPrefix + nicID }
        let suffix = count > 1 ? "-\(index)" : ""
        let room = maxInterfaceName - tapPrefix.utf8.count - suffix.utf8.count
        guard vmID.utf8.count > room else { return tapPrefix + vmID + suffix }
        let tag = hex(UInt16(truncatingIfNeeded: fnv1a(Array(vmID.utf8))), digits: 4)
        return tapPrefix + String(vmID.prefix(room - tag.count)) + tag + suffix
    }

    /// The MAC for NIC `index` of VM `vmID`; `attempt` > 0 gives the next candidates when
    /// an earlier one is already in use on the bridge.
    static func stableMAC(vmID: String, index: Int, attempt: Int = 0) -> MACAddress {
        var state = fnv1a(Array("volt-vmm/\(vmID)/\(index)/\(attempt)".utf8))
        return localUnicast(splitMix(&state))
    }

    static func randomMAC<G: RandomNumberGenerator>(using generator: inout G) -> MACAddress {
        localUnicast(UInt64.random(in: .min ... .max, using: &generator))
    }

    /// The low 6 bytes of `bits`, first byte forced to locally administered unicast.
    static func localUnicast(_ bits: UInt64) -> MACAddress {
        var bytes = (0..<6).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }
        bytes[0] = (bytes[0] | 0x02) & ~0x01
        return MACAddress(bytes: bytes)
    }

    /// FNV-1a, 64-bit: a fixed hash (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 { FNV1a.hash(bytes) }

    /// SplitMix64 step: spreads FNV's weak low bits over the whole word.
    static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    static func hex(_ value: UInt16, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
