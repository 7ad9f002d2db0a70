import Testing
@testable import VMM

@Suite struct VMConfigFileTests {
    func parse(_ json: String) throws -> VMConfigFile {
        try VMConfigFile.parse(Array(json.utf8), file: "vm.json")
    }

    @Test func fullConfig() throws {
        let c = try parse("""
        { "id": "web1", "vcpus": 2, "memory_mib": 512, "kernel": "default", "cmdline": "console=ttyS0", "initrd": "i.cpio",
          "disks": [{ "id": "root", "path": "root.img", "readonly": true, "direct": false, "queues": 2, "serial": "r1" }],
          "network": [{ "id": "eth0", "mode": "tap", "tap": "tap0", "mac": "52:54:00:12:34:56", "mtu": 1500,
                        "multiqueue": 2, "vhost": true, "ipv4": "10.42.0.10/24", "gateway": "10.42.0.1" }] }
        """)
        #expect(c.id == "web1" && c.vcpus == 2 && c.memoryMiB == 512 && c.kernel == "default")
        #expect(c.disks == [DiskSpec(path: "root.img", readOnly: true, direct: false, queues: 2, serial: "r1")])
        #expect(c.networks == ["tap=tap0,mac=52:54:00:12:34:56,mtu=1500,queues=2,vhost=on"])
        #expect(c.kernelIPArgument == "ip=10.42.0.10::10.42.0.1:255.255.255.0::eth0:off")
    }

    @Test func emptyObjectIsValid() throws {
        #expect(try parse("{}") == VMConfigFile())
    }

    static let invalid: [(String, [String])] = [
        ("[1]", [": expected an object, found an array"]),
        (#"{"vcpu": 2}"#, ["vcpu: unknown key"]),
        (#"{"vcpus": 0}"#, ["vcpus: 0 is out of range (1 to 40)"]),
        (#"{"vcpus": 1.5}"#, ["vcpus: expected a whole number"]),
        (#"{"vcpus": "2"}"#, ["vcpus: expected a whole number, found a string"]),
        (#"{"memory_mib": 4}"#, ["memory_mib: 4 is out of range"]),
        (#"{"id": "a b"}"#, ["id: \"a b\" must be 1-64 characters"]),
        (#"{"disks": {}}"#, ["disks: expected an array, found an object"]),
        (#"{"disks": [{"readonly": true}]}"#, ["disks[0].path: required"]),
        (#"{"disks": [{"path": "a", "readonly": "yes"}]}"#, ["disks[0].readonly: expected true or false, found a string"]),
        (#"{"disks": [{"path": "a", "queues": 99}]}"#, ["disks[0].queues: 99 is out of range (1 to 16)"]),
        (#"{"disks": [{"path": "a", "size": 1}]}"#, ["disks[0].size: unknown key"]),
        (#"{"network": [{"tap": "t", "mac": "52:54:zz:12:34:56"}]}"#, [#"network[0].mac: "52:54:zz:12:34:56" is not a MAC address"#]),
        (#"{"network": [{"mode": "tap"}]}"#, [#"network[0].tap: required when mode is "tap""#]),
        (#"{"network": [{"mode": "wifi", "tap": "t"}]}"#, [#"network[0].mode: "wifi" is not one of tap, bridge, networkd"#]),
        (#"{"network": [{"mode": "networkd"}]}"#, [#"network[0].bridge: required when mode is "networkd""#]),
        (#"{"network": [{"tap": "t", "ipv4": "10.0.0.300/24"}]}"#, ["network[0].ipv4: \"10.0.0.300/24\" is not an IPv4 address"]),
        (#"{"network": [{"tap": "t", "gateway": "10.0.0.1"}]}"#, ["network[0].gateway: needs ipv4 as well"]),
        (#"{"network": [{"tap": "t", "mac": "01:00:5e:00:00:01"}]}"#, ["network[0]: mac=01:00:5e:00:00:01: a NIC needs a unicast address"]),
        (#"{"disks": [{"id": "x", "path": "a"}], "network": [{"id": "x", "tap": "t"}]}"#, [#"network[0].id: "x" is already used by disks[0]"#]),
        (#"{"network": [{"tap": "a", "mac": "52:54:00:00:00:01"}, {"tap": "b", "mac": "52:54:00:00:00:01"}]}"#,
         ["network[1].mac: 52:54:00:00:00:01 is already used by network[0]"]),
        (#"{"network": [{"tap": "a"}, {"tap": "a"}]}"#, ["network[1].tap: a is already used by network[0]"]),
        (#"{"network": [{"tap": "a", "ipv4": "10.0.0.2/24"}, {"tap": "b", "ipv4": "10.0.1.2/24"}]}"#,
         ["network[1].ipv4: only one interface"]),
    ]

    @Test(arguments: invalid) func everyProblemHasItsPath(_ json: String, _ expected: [String]) {
        #expect {
            try parse(json)
        } throws: { error in
            guard let problems = error as? ConfigProblems else { return false }
            return expected.allSatisfy { want in problems.problems.contains { $0.hasPrefix(want) || $0.contains(want) } }
        }
    }

    @Test func allProblemsAreReportedAtOnce() {
        #expect {
            try parse(#"{"vcpus": 0, "memory_mib": "a", "bogus": 1, "disks": [{"queues": 0}]}"#)
        } throws: { error in
            (error as? ConfigProblems)?.problems.count == 5   // vcpus, memory_mib, bogus, disks[0].queues, disks[0].path
        }
    }

    @Test func notJSONIsOneClearError() {
        #expect {
            try parse("{ vcpus: 2 ")
        } throws: { error in
            "\(error)".hasPrefix("vm.json: not valid JSON")
        }
    }
}
