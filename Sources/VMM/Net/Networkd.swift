import Glibc
import Logging
import SystemPackage

/// The two systemd-networkd units that make one VM TAP a bridge port
/// (`--net bridge=BR,mode=networkd`): `50-vm-<name>.netdev` creates the TAP,
/// `50-vm-<name>.network` puts it on the bridge.
struct NetworkdUnits: Equatable {
    let tapName: String
    let bridge: String
    let queues: Int
    let mtu: Int?
    let vmID: String

    /// `50-vm-<id>` for TAP `tap-<id>`.
    var baseName: String {
        "50-vm-" + (tapName.hasPrefix(NICIdentity.tapPrefix) ? String(tapName.dropFirst(NICIdentity.tapPrefix.count)) : tapName)
    }

    var netdevFile: String { baseName + ".netdev" }
    var networkFile: String { baseName + ".network" }

    var netdev: String {
        var lines = [
            "# Written by volt-vmm for VM \(vmID); removed when the VM exits.",
            "[NetDev]",
            "Name=\(tapName)",
            "Kind=tap",
        ]
        if let mtu { lines.append("MTUBytes=\(mtu)") }
        lines += ["", "[Tap]", "VNetHeader=true"]
        if queues > 1 { lines.append("MultiQueue=true") }
        lines.append("PacketInfo=false")
        return lines.joined(separator: "\n") + "\n"
    }

    var network: String {
        [
            "# Written by volt-vmm for VM \(vmID); removed when the VM exits.",
            "[Match]",
            "Name=\(tapName)",
            "",
            "[Network]",
            "Bridge=\(bridge)",
            "ConfigureWithoutCarrier=yes",
        ].joined(separator: "\n") + "\n"
    }
}

/// Where networkd units go and how networkd is told to reread them. Both can be redirected
/// for tests: `VOLT_NETWORKD_DIR` (default /run/systemd/network) and `VOLT_NETWORKCTL`
/// (default networkctl from /usr/bin or /bin). With `VOLT_NETWORKCTL` set, volt-vmm trusts
/// that command's exit status instead of also looking for a running systemd-networkd.
struct Networkd {
    var directory: String
    var networkctl: String
    /// Also require /run/systemd/netif and a systemd-networkd process before believing it runs.
    var checkDaemon: Bool
    /// How long to wait for networkd to create the TAP before creating it ourselves.
    var timeoutMilliseconds: Int = 5000

    static func fromEnvironment() -> Networkd {
        let override = environment("VOLT_NETWORKCTL")
        let candidates: [String] = ["/usr/bin/networkctl", "/bin/networkctl"]
        let installed = candidates.first(where: { path in access(path, X_OK) == 0 })
        let networkctl: String = override ?? installed ?? "networkctl"
        return Networkd(directory: environment("VOLT_NETWORKD_DIR") ?? "/run/systemd/network",
                        networkctl: networkctl, checkDaemon: override == nil)
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// Why networkd cannot be used here, or nil when it seems to run.
    func unavailableReason() -> String? {
        guard access(networkctl, X_OK) == 0 else { return "\(networkctl) not found" }
        if checkDaemon {
            guard HostFS.exists("/run/systemd/netif") else { return "/run/systemd/netif is missing (systemd-networkd never ran)" }
            guard Self.daemonProcessExists() else { return "systemd-networkd is not running" }
        }
        return nil
    }

    /// `networkctl reload`; nil on success, else why it failed.
    func reload() -> String? {
        do {
            let result = try Subprocess.run(networkctl, arguments: ["reload"], stdout: .discard, stderr: .capture)
            if result.termination == .exited(0) { return nil }
            let message = String(decoding: result.stderr, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            return "\(networkctl) reload: \(result.termination)\(message.isEmpty ? "" : " (\(message))")"
        } catch {
            return "\(networkctl) reload: \(error)"
        }
    }

    func write(_ units: NetworkdUnits) throws -> [String] {
        if !HostFS.exists(directory) && mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw HostNetworkError.networkdDirectoryFailed(directory, Errno(rawValue: errno))
        }
        var written: [String] = []
        for (file, text) in [(units.netdevFile, units.netdev), (units.networkFile, units.network)] {
            let path = "\(directory)/\(file)"
            do {
                try HostFS.write(path, text)
            } catch {
                for done in written { unlink(done) }
                throw HostNetworkError.networkdWriteFailed(path: path, error)
            }
            written.append(path)
        }
        return written
    }

    /// Polls until interface `name` exists: 10 ms, doubling, at most 500 ms per sleep,
    /// `timeoutMilliseconds` in all. True when it appeared.
    func waitForInterface(_ name: String) -> Bool {
        var waited = 0
        var step = 10
        while true {
            if NetInterface.exists(name) { return true }
            if waited >= timeoutMilliseconds { return false }
            let sleep = min(step, timeoutMilliseconds - waited)
            usleep(UInt32(sleep) * 1000)
            waited += sleep
            step = min(step * 2, 500)
        }
    }

    /// A process whose name is systemd-networkd (comm is cut to 15 bytes).
    static func daemonProcessExists() -> Bool {
        for entry in HostFS.list("/proc") ?? [] where entry.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            if HostFS.readText("/proc/\(entry)/comm") == "systemd-network" { return true }
        }
        return false
    }
}
