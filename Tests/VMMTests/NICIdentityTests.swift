import Testing
@testable import VMM

@Suite struct NICIdentityTests {
    struct Counter: RandomNumberGenerator {
        var state: UInt64 = 1
        mutating func next() -> UInt64 { state &+= 0x9e37_79b9_7f4a_7c15; return state }
    }

    @Test func generatedMACsAreLocallyAdministeredUnicast() {
        var generator = Counter()
        let macs = (0..<200).map { _ in NICIdentity.randomMAC(using: &generator) }
            + (0..<200).map { NICIdentity.stableMAC(vmID: "vm\($0)", index: $0 % 3) }
        for mac in macs {
            #expect(mac.isUnicast && mac.isLocallyAdministered, "\(mac)")
            #expect(mac.bytes[0] & 0x03 == 0x02)
        }
        // Every other bit pattern of the first byte survives (only bits 0 and 1 are forced).
        #expect(Set(macs.map { $0.bytes[0] }).count > 20)
    }

    @Test func stableMACsDependOnIdAndIndexOnly() {
        let a = NICIdentity.stableMAC(vmID: "web-1", index: 0)
        #expect(a == NICIdentity.stableMAC(vmID: "web-1", index: 0))
        #expect(a != NICIdentity.stableMAC(vmID: "web-1", index: 1))
        #expect(a != NICIdentity.stableMAC(vmID: "web-2", index: 0))
        #expect(a != NICIdentity.stableMAC(vmID: "web-1", index: 0, attempt: 1))
        // Fixed across processes and releases: a known value pins the hash.
        #expect(NICIdentity.fnv1a(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
    }

    @Test func tapNamesFitIFNAMSIZAndStayUnique() {
        #expect(NICIdentity.tapName(vmID: "web1", nicID: nil, index: 0, count: 1) == "tap-web1")
        #expect(NICIdentity.tapName(vmID: "web1", nicID: nil, index: 2, count: 3) == "tap-web1-2")
        #expect(NICIdentity.tapName(vmID: "web1", nicID: "uplink", index: 0, count: 2) == "tap-uplink")
        #expect(NICIdentity.tapName(vmID: "0123abcd", nicID: nil, index: 0, count: 1) == "tap-0123abcd")
        let long = String(repeating: "x", count: 32)
        var names: Set<String> = []
        for id in [long, long.dropLast() + "y", "abcdefghijk", "abcdefghijkl", "abcdefghijkm"] {
            for count in [1, 2, 11] {
                for index in 0..<count {
                    let name = NICIdentity.tapName(vmID: String(id), nicID: nil, index: index, count: count)
                    #expect(name.utf8.count <= 15, "\(name)")
                    #expect(name.hasPrefix("tap-"))
                    #expect(names.insert("\(count)/\(name)").inserted, "\(name) repeats")
                }
            }
        }
        // An 11-character id fits as is; a longer one gets a hash tag instead of its tail.
        #expect(NICIdentity.tapName(vmID: "abcdefghijk", nicID: nil, index: 0, count: 1) == "tap-abcdefghijk")
        #expect(NICIdentity.tapName(vmID: "abcdefghijkl", nicID: nil, index: 0, count: 1).hasPrefix("tap-abcdefg"))
    }

    @Test func vmIDValidationAndDefault() throws {
        #expect(try VMID(given: "web_1-A").value == "web_1-A")
        for bad in ["", "a b", "a/b", "ü", String(repeating: "a", count: 65)] {
            #expect(throws: (any Error).self) { try VMID(given: bad) }
        }
        #expect(try VMID(given: String(repeating: "a", count: 64)).isGiven)
        #expect(try VMID(given: "5f0ef47c-5b4e-4d6e-9c5e-0e7c1f3b9a21").isGiven, "a UUID, as firecracker-go-sdk passes")
        let generated = VMID()
        #expect(!generated.isGiven && generated.value.count == 8 && UInt32(generated.value, radix: 16) != nil)
        #expect(VMID().value != VMID().value || VMID().value != VMID().value)
    }

    @Test func plansRejectClashingNamesAndMACs() throws {
        let id = try VMID(given: "vm")
        let plans = try NICPlan.plans(for: [NetSpec(host: .bridge("br0", mode: .direct)), NetSpec(host: .bridge("br0", mode: .direct)),
                                            NetSpec(tap: "tapx")], vmID: id)
        #expect(plans.map(\.tapName) == ["tap-vm-0", "tap-vm-1", "tapx"])
        #expect(plans.map(\.index) == [0, 1, 2])
        #expect {
            try NICPlan.plans(for: [NetSpec(host: .bridge("br0", mode: .direct), id: "a"),
                                    NetSpec(host: .bridge("br1", mode: .direct), id: "a")], vmID: id)
        } throws: { "\($0)".contains("two NICs use the TAP tap-a") }
        let mac = MACAddress("02:00:00:00:00:01")
        #expect {
            try NICPlan.plans(for: [NetSpec(tap: "t1", mac: mac), NetSpec(tap: "t2", mac: mac)], vmID: id)
        } throws: { "\($0)".contains("given to two NICs") }
    }
}
