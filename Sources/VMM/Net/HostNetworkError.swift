import SystemPackage

/// Setting up the host side of a NIC failed: its TAP, bridge or networkd units. Each
/// message names the interface and the fix.
public enum HostNetworkError: Error, Equatable, CustomStringConvertible {
    // Planning the VM's NICs, before anything is created
    case tapNameTaken(String)
    case macTaken(String)
    // Bridges and interfaces
    case bridgeNotFound(String)
    case notABridge(String)
    case tapExists(bridge: String, tap: String, vmID: VMID)
    case portVanished(bridge: String, port: String)
    case addPortFailed(bridge: String, port: String, Errno)
    case linkUpFailed(String, Errno)
    case setMTUFailed(String, mtu: Int, Errno)
    // TAPs
    case tapNotFound(String, multiQueue: Bool)
    case notATap(String)
    case tunMissing(String)
    case tapPermissionDenied(String, multiQueue: Bool)
    case tapFlagsMismatch(String, multiQueue: Bool)
    case tapBusy(String)
    case tapOpenFailed(String, Errno)
    // systemd-networkd units
    case networkdDirectoryFailed(String, Errno)
    case networkdWriteFailed(path: String, Errno)

    public var description: String {
        switch self {
        case let .tapNameTaken(tap):
            return "--net: two NICs use the TAP \(tap) — give each NIC its own tap= or id="
        case let .macTaken(mac):
            return "--net mac=\(mac): given to two NICs — each NIC needs its own MAC"
        case let .bridgeNotFound(name):
            return "bridge \(name) not found — create it (ip link add \(name) type bridge) or install configs/networkd/10-volt-vmm-br0.*"
        case let .notABridge(name):
            return "--net bridge=\(name): \(name) is not a bridge — name a bridge (ip -d link show type bridge)"
        case let .tapExists(bridge, tap, vmID):
            return "--net bridge=\(bridge): interface \(tap) already exists — another VM with --id \(vmID) may be running; choose another --id (or id=), or delete it (ip link del \(tap))"
        case let .portVanished(bridge, port):
            return "bridge \(bridge): interface \(port) vanished before it could join"
        case let .addPortFailed(bridge, port, errno):
            return "bridge \(bridge): cannot add \(port) as a port: \(errno) — run as root (CAP_NET_ADMIN)"
        case let .linkUpFailed(name, errno):
            return "cannot bring \(name) up: \(errno) — run as root (CAP_NET_ADMIN)"
        case let .setMTUFailed(name, mtu, errno):
            return "cannot set the MTU of \(name) to \(mtu): \(errno)"
        case let .tapNotFound(name, multiQueue):
            return "--net tap=\(name): no such interface — create it (ip tuntap add \(name) mode tap vnet_hdr\(multiQueue ? " multi_queue" : "")) or use bridge=BR"
        case let .notATap(name):
            return "--net tap=\(name): the interface is not a TAP device"
        case let .tunMissing(name):
            return "--net tap=\(name): /dev/net/tun is missing — load the tun module (modprobe tun)"
        case let .tapPermissionDenied(name, multiQueue):
            return "--net tap=\(name): permission denied — run as root, or create the TAP for this user (ip tuntap add \(name) mode tap user $USER vnet_hdr\(multiQueue ? " multi_queue" : ""))"
        case let .tapFlagsMismatch(name, multiQueue):
            return "--net tap=\(name): the existing TAP's flags do not match — recreate it with vnet_hdr\(multiQueue ? " and multi_queue" : "") (ip tuntap add \(name) mode tap vnet_hdr\(multiQueue ? " multi_queue" : ""))"
        case let .tapBusy(name):
            return "--net tap=\(name): the TAP is in use by another process"
        case let .tapOpenFailed(name, errno):
            return "--net tap=\(name): cannot open: \(errno)"
        case let .networkdDirectoryFailed(directory, errno):
            return "networkd: cannot create \(directory): \(errno) — run as root or set VOLT_NETWORKD_DIR"
        case let .networkdWriteFailed(path, errno):
            return "networkd: cannot write \(path): \(errno) — run as root or set VOLT_NETWORKD_DIR"
        }
    }
}
