import CShim
import Glibc
import SystemPackage

/// A Linux bridge a VM's TAP joins (`--net bridge=BR`): checked through sysfs, joined with
/// SIOCBRADDIF. volt-vmm never creates or changes the bridge itself.
struct Bridge {
    let name: String
    /// Where sysfs is mounted (tests point this at a synthetic tree).
    let sysfs: String

    /// The bridge `name`, which must exist and be a bridge.
    init(name: String, sysfs: String = "/sys/class/net") throws {
        self.name = name
        self.sysfs = sysfs
        guard HostFS.exists("\(sysfs)/\(name)") else {
            throw HostNetworkError.bridgeNotFound(name)
        }
        guard HostFS.exists("\(sysfs)/\(name)/bridge") else {
            throw HostNetworkError.notABridge(name)
        }
    }

    /// The bridge's MTU (a new port gets it unless `mtu=` says otherwise).
    var mtu: Int? { HostFS.readText("\(sysfs)/\(name)/mtu").flatMap { Int($0) } }

    /// Every MAC the bridge knows: its forwarding database (`brforward`, learned and local
    /// entries), its own address and its ports' addresses.
    func knownMACs() -> Set<MACAddress> {
        var macs = Set(Self.fdbMACs(HostFS.read("\(sysfs)/\(name)/brforward") ?? []))
        var addressFiles = ["\(sysfs)/\(name)/address"]
        for port in HostFS.list("\(sysfs)/\(name)/brif") ?? [] { addressFiles.append("\(sysfs)/\(name)/brif/\(port)/address") }
        for file in addressFiles {
            if let text = HostFS.readText(file), let mac = MACAddress(text) { macs.insert(mac) }
        }
        return macs
    }

    /// The MACs in a `brforward` blob: an array of `struct __fdb_entry` (linux/if_bridge.h,
    /// 16 bytes, the address first). A trailing partial entry is ignored.
    static func fdbMACs(_ blob: [UInt8]) -> [MACAddress] {
        let size = Int(VOLT_FDB_ENTRY_SIZE)
        return stride(from: 0, to: blob.count - size + 1, by: size).map { MACAddress(bytes: Array(blob[$0 ..< $0 + 6])) }
    }

    /// Makes interface `port` a port of this bridge.
    func attach(_ port: String) throws {
        let index = if_nametoindex(port)
        guard index != 0 else { throw HostNetworkError.portVanished(bridge: name, port: port) }
        let r = volt_netif_bridge_add(name, Int32(index))
        guard r >= 0 else {
            throw HostNetworkError.addPortFailed(bridge: name, port: port, Errno(rawValue: -r))
        }
    }
}

/// Interface flags and MTU (SIOCSIFFLAGS / SIOCSIFMTU).
enum NetInterface {
    static func setUp(_ name: String) throws {
        let r = volt_netif_set_up(name)
        guard r >= 0 else { throw HostNetworkError.linkUpFailed(name, Errno(rawValue: -r)) }
    }

    static func setMTU(_ name: String, _ mtu: Int) throws {
        let r = volt_netif_set_mtu(name, Int32(mtu))
        guard r >= 0 else { throw HostNetworkError.setMTUFailed(name, mtu: mtu, Errno(rawValue: -r)) }
    }

    static func exists(_ name: String) -> Bool { if_nametoindex(name) != 0 }
}
