import Foundation
import Logging
import Testing
@testable import VMM

@Suite struct BridgeTests {
    /// One `struct __fdb_entry`: mac[6], port_no, is_local, ageing_timer_value (u32),
    /// port_hi, pad0, unused (u16).
    static func fdbEntry(_ mac: [UInt8], port: UInt8, local: Bool) -> [UInt8] {
        mac + [port, local ? 1 : 0] + [0x10, 0x27, 0, 0] + [0, 0, 0, 0]
    }

    @Test func fdbParsing() {
        let a: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        let b: [UInt8] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]
        let blob = Self.fdbEntry(a, port: 1, local: true) + Self.fdbEntry(b, port: 2, local: false)
        #expect(Bridge.fdbMACs(blob) == [MACAddress(bytes: a), MACAddress(bytes: b)])
        #expect(Bridge.fdbMACs([]) == [])
        #expect(Bridge.fdbMACs(Array(blob.prefix(20))) == [MACAddress(bytes: a)], "a partial entry is ignored")
        #expect(Bridge.fdbMACs(Array(blob.prefix(15))) == [])
    }

    /// A synthetic /sys/class/net with bridge br0 (one port, one fdb entry) and a veth.
    static func sysfs() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volt-sysfs-\(UUID().uuidString)").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/br0/bridge", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/br0/brif/vp1", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/vp0", withIntermediateDirectories: true)
        try "1400\n".write(toFile: "\(root)/br0/mtu", atomically: true, encoding: .utf8)
        try "02:00:00:00:00:b0\n".write(toFile: "\(root)/br0/address", atomically: true, encoding: .utf8)
        try "02:00:00:00:00:01\n".write(toFile: "\(root)/br0/brif/vp1/address", atomically: true, encoding: .utf8)
        try Data(fdbEntry([0x02, 0, 0, 0, 0, 0x02], port: 1, local: false)).write(to: URL(fileURLWithPath: "\(root)/br0/brforward"))
        return root
    }

    @Test func bridgeChecksAndKnownMACs() throws {
        let root = try Self.sysfs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bridge = try Bridge(name: "br0", sysfs: root)
        #expect(bridge.mtu == 1400)
        #expect(bridge.knownMACs() == Set(["02:00:00:00:00:b0", "02:00:00:00:00:01", "02:00:00:00:00:02"].compactMap(MACAddress.init)))
        #expect { try Bridge(name: "br9", sysfs: root) } throws: {
            "\($0)" == "bridge br9 not found — create it (ip link add br9 type bridge) or install configs/networkd/10-volt-vmm-br0.*"
        }
        #expect { try Bridge(name: "vp0", sysfs: root) } throws: { "\($0)".contains("vp0 is not a bridge") }
    }

    @Test func aMACTheBridgeKnowsIsRegeneratedAndLogged() throws {
        let records = LogRecords()
        let logger = Logger(label: "test") { _ in records }
        let id = try VMID(given: "vm")
        let plan = try #require(try NICPlan.plans(for: [NetSpec(host: .bridge("br0", mode: .direct))], vmID: id).first)
        let first = NICIdentity.stableMAC(vmID: "vm", index: 0)
        let second = NICIdentity.stableMAC(vmID: "vm", index: 0, attempt: 1)
        let third = NICIdentity.stableMAC(vmID: "vm", index: 0, attempt: 2)
        // Without a clash: the stable MAC.
        #expect(HostNIC.chooseMAC(plan: plan, vmID: id, taken: [], onBridge: [], bridge: "br0", name: "net0", logger: logger) == first)
        // On the bridge, then taken by an earlier NIC: the next candidates, each step logged.
        let mac = HostNIC.chooseMAC(plan: plan, vmID: id, taken: [second], onBridge: [first], bridge: "br0", name: "net0", logger: logger)
        #expect(mac == third)
        #expect(records.lines.contains("net0: MAC \(first) is already in use on bridge br0 — using \(second)"), "\(records.lines)")
        #expect(records.lines.count == 2)
        // A given MAC is kept (the operator chose it), with a warning.
        let given = try #require(MACAddress("02:00:00:00:00:01"))
        let givenPlan = NICPlan(spec: NetSpec(host: .bridge("br0", mode: .direct), mac: given), index: 0, tapName: "tap-vm")
        #expect(HostNIC.chooseMAC(plan: givenPlan, vmID: id, taken: [], onBridge: [given], bridge: "br0", name: "net0", logger: logger) == given)
        #expect(records.lines.last == "net0: mac=02:00:00:00:00:01 is already present on bridge br0")
    }
}

/// Collects log messages for assertions.
final class LogRecords: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { lock.withLock { stored.append("\(event.message)") } }
    var lines: [String] { lock.withLock { stored } }
}
