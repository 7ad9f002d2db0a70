import Foundation
import Testing
@testable import VMM

@Suite struct NetworkdTests {
    @Test func unitsForOneQueue() {
        let units = NetworkdUnits(tapName: "tap-web1", bridge: "br0", queues: 1, mtu: nil, vmID: "web1")
        #expect(units.netdevFile == "50-vm-web1.netdev" && units.networkFile == "50-vm-web1.network")
        #expect(units.netdev == """
            # Written by volt-vmm for VM web1; removed when the VM exits.
            [NetDev]
            Name=tap-web1
            Kind=tap

            [Tap]
            VNetHeader=true
            PacketInfo=false

            """)
        #expect(units.network == """
            # Written by volt-vmm for VM web1; removed when the VM exits.
            [Match]
            Name=tap-web1

            [Network]
            Bridge=br0
            ConfigureWithoutCarrier=yes

            """)
    }

    @Test func unitsForFourQueuesAndAnMTU() {
        let units = NetworkdUnits(tapName: "tap-web1-1", bridge: "br-lan", queues: 4, mtu: 9000, vmID: "web1")
        #expect(units.baseName == "50-vm-web1-1")
        #expect(units.netdev == """
            # Written by volt-vmm for VM web1; removed when the VM exits.
            [NetDev]
            Name=tap-web1-1
            Kind=tap
            MTUBytes=9000

            [Tap]
            VNetHeader=true
            MultiQueue=true
            PacketInfo=false

            """)
        #expect(units.network.contains("Name=tap-web1-1\n") && units.network.contains("Bridge=br-lan\n"))
    }

    @Test func writesIntoTheChosenDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-networkd-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let networkd = Networkd(directory: dir, networkctl: "/nonexistent/networkctl", checkDaemon: false)
        let units = NetworkdUnits(tapName: "tap-a", bridge: "br0", queues: 2, mtu: nil, vmID: "a")
        let files = try networkd.write(units)
        #expect(files == ["\(dir)/50-vm-a.netdev", "\(dir)/50-vm-a.network"])
        #expect(try String(contentsOfFile: files[0], encoding: .utf8) == units.netdev)
        #expect(try String(contentsOfFile: files[1], encoding: .utf8) == units.network)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["50-vm-a.netdev", "50-vm-a.network"])
    }

    @Test func networkdAvailability() throws {
        #expect(Networkd(directory: "/tmp", networkctl: "/nonexistent/networkctl", checkDaemon: false).unavailableReason()
            == "/nonexistent/networkctl not found")
        #expect(Networkd(directory: "/tmp", networkctl: "/bin/true", checkDaemon: false).unavailableReason() == nil)
        #expect(Networkd(directory: "/tmp", networkctl: "/bin/true", checkDaemon: false).reload() == nil)
        let failing = Networkd(directory: "/tmp", networkctl: "/bin/false", checkDaemon: false).reload()
        #expect(failing == "/bin/false reload: exit status 1")
        // This host: systemd is not PID 1, so the daemon check says so.
        if !Networkd.daemonProcessExists() {
            #expect(Networkd(directory: "/tmp", networkctl: "/bin/true", checkDaemon: true).unavailableReason() != nil)
        }
    }

    @Test func waitingForAnInterfaceBacksOffAndTimesOut() {
        var networkd = Networkd(directory: "/tmp", networkctl: "/bin/true", checkDaemon: false)
        networkd.timeoutMilliseconds = 200
        let start = Date()
        #expect(!networkd.waitForInterface("volt-nosuch0"))
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.19 && elapsed < 2, "\(elapsed)")
        #expect(networkd.waitForInterface("lo"))
    }
}
