import Testing
@testable import VMMMain

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
    }

    static let badNets: [(String, String)] = [
        ("mac=52:54:00:12:34:56", "'tap=' is required"),
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
