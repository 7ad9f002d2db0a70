import Testing
@testable import VMM

@Suite struct DeviceSpecTests {
    @Test func diskDefaultsAndFlags() throws {
        #expect(try DiskSpec(parsing: "path=a.img") == DiskSpec(path: "a.img"))
        #expect(try DiskSpec(parsing: "path=/x/b.img,ro=on,direct=on,queues=4,serial=abc")
            == DiskSpec(path: "/x/b.img", readOnly: true, direct: true, queues: 4, serial: "abc"))
    }

    static let badDisks: [(String, String)] = [
        ("", "empty value"),
        ("ro=on", "'path=' is required"),
        ("path=", "'path=' is required"),
        ("path=a,ro=maybe", "ro=maybe must be on or off"),
        ("path=a,queues=0", "queues=0 must be a number from 1 to 16"),
        ("path=a,queues=x", "must be a number"),
        ("path=a,size=3", "unknown key 'size'"),
        ("path=a,path=b", "'path' given twice"),
        ("path=a,ro", "'ro' is not key=value"),
        ("path=a,serial=123456789012345678901", "at most 20 bytes"),
    ]

    @Test(arguments: badDisks) func diskErrorsNameTheProblem(_ text: String, _ message: String) {
        #expect {
            try DiskSpec(parsing: text)
        } throws: { error in
            "\(error)".contains(message) && "\(error)".hasPrefix("--disk")
        }
    }

    @Test func netSpec() throws {
        let spec = try NetSpec(parsing: "tap=tap0,mac=52:54:00:12:34:56,mtu=9000,queues=2")
        #expect(spec.tap == "tap0" && spec.mac?.description == "52:54:00:12:34:56" && spec.mtu == 9000 && spec.queues == 2)
        #expect(spec.host == .tap("tap0") && spec.bridge == nil && !spec.vhost && spec.id == nil)
    }

    @Test func netSpecBridge() throws {
        #expect(try NetSpec(parsing: "bridge=br0") == NetSpec(host: .bridge("br0", mode: .direct)))
        #expect(try NetSpec(parsing: "bridge=br0,mode=networkd,queues=4,id=up-1,vhost=on,mtu=9000,mac=02:00:00:00:00:01")
            == NetSpec(host: .bridge("br0", mode: .networkd), mac: MACAddress("02:00:00:00:00:01"), mtu: 9000, queues: 4,
                       id: "up-1", vhost: true))
        #expect(try NetSpec(parsing: "bridge=br0,mode=direct,vhost=off").host == .bridge("br0", mode: .direct))
        #expect(try NetSpec(parsing: "tap=t0,vhost=on").vhost)
        #expect(try NetSpec(parsing: "bridge=br0,id=abcdefghijk").id == "abcdefghijk")
    }

    static let badNets: [(String, String)] = [
        ("mac=52:54:00:12:34:56", "give tap=NAME (an existing TAP) or bridge=BR"),
        ("tap=", "'tap=' is required"),
        ("bridge=", "'bridge=' is required"),
        ("tap=t,bridge=br0", "tap= and bridge= exclude each other"),
        ("bridge=averyveryverylongname", "at most 15 bytes"),
        ("bridge=br0,mode=auto", "mode=auto: expected direct or networkd"),
        ("tap=t,mode=networkd", "mode= applies to bridge=BR only"),
        ("tap=t,id=x", "id= names the TAP volt-vmm creates"),
        ("bridge=br0,id=abcdefghijkl", "use 1 to 11 characters"),
        ("bridge=br0,id=a.b", "use 1 to 11 characters"),
        ("bridge=br0,id=", "use 1 to 11 characters"),
        ("bridge=br0,vhost=maybe", "vhost=maybe must be on or off"),
        ("bridge=br0,queues=17", "queues=17 must be a number from 1 to 16"),
        ("bridge=br0,mac=ff:ff:ff:ff:ff:ff", "unicast"),
        ("bridge=br0,colour=red", "unknown key 'colour'"),
        ("tap=averyveryverylongname", "at most 15 bytes"),
        ("tap=t,mac=52:54:zz:12:34:56", "not a MAC address"),
        ("tap=t,mac=01:00:5e:00:00:01", "unicast"),
        ("tap=t,mtu=20", "mtu=20 must be a number from 68"),
    ]

    @Test(arguments: badNets) func netErrorsNameTheProblem(_ text: String, _ message: String) {
        #expect {
            try NetSpec(parsing: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}
