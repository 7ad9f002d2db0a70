import CShim
import Glibc
import Logging
import SystemPackage

/// Which TAP name and which place among the VM's NICs a `--net` gets; checked before
/// anything is created, so clashes are usage errors.
public struct NICPlan: Equatable {
    let spec: NetSpec
    /// Index among the VM's `--net` options (MAC derivation, `-<index>` suffix).
    let index: Int
    /// The TAP volt-vmm creates (bridge mode) or opens (`tap=`).
    let tapName: String

    public static func plans(for specs: [NetSpec], vmID: VMID) throws -> [NICPlan] {
        let plans = specs.enumerated().map { index, spec in
            NICPlan(spec: spec, index: index,
                    tapName: spec.tap ?? NICIdentity.tapName(vmID: vmID.value, nicID: spec.id, index: index, count: specs.count))
        }
        var names: Set<String> = [], macs: Set<MACAddress> = []
        for plan in plans {
            guard names.insert(plan.tapName).inserted else {
                throw HostNetworkError.tapNameTaken(plan.tapName)
            }
            if let mac = plan.spec.mac, !macs.insert(mac).inserted {
                throw HostNetworkError.macTaken(mac.description)
            }
        }
        return plans
    }
}

/// The host side of one NIC: its TAP (opened or created), the bridge it joined, the guest
/// MAC, and what must be undone when the VM ends.
///
/// Who deletes a TAP: volt-vmm creates bridge-mode TAPs non-persistent, so a TAP lives
/// exactly as long as some fd holds it — volt-vmm's copies and its worker's. When the VM
/// ends (any way, including SIGKILL of volt-vmm: the worker then sees its socket close and
/// exits), the last fd closes and the kernel deletes the TAP and its bridge port. A TAP
/// networkd created is persistent; volt-vmm clears TUNSETPERSIST once it holds it, so the
/// same rule applies. `tap=` TAPs belong to the operator and are left alone.
final class HostNIC {
    let name: String
    let mac: MACAddress
    private(set) var tap: TapDevice?
    private var unitFiles: [String] = []
    private let networkd: Networkd?
    private let logger: Logger

    var tapName: String { tap?.name ?? "" }

    /// Opens or creates the NIC's TAP. `taken` holds the MACs earlier NICs of this VM got;
    /// this NIC's is added.
    init(plan: NICPlan, vmID: VMID, name: String, taken: inout Set<MACAddress>,
         networkd: Networkd = .fromEnvironment(), logger: Logger) throws {
        self.name = name
        self.logger = logger
        let spec = plan.spec
        switch spec.host {
        case let .tap(existing):
            self.networkd = nil
            let tap = try TapDevice(existing: existing, queuePairs: spec.queues)
            self.tap = tap
            // A TAP the operator already made a bridge port: avoid that bridge's MACs too.
            let master = HostFS.readText("/sys/class/net/\(existing)/master/uevent").flatMap(Self.interfaceName)
            let known = master.flatMap { try? Bridge(name: $0) }?.knownMACs() ?? []
            mac = Self.chooseMAC(plan: plan, vmID: vmID, taken: taken, onBridge: known, bridge: master, name: name, logger: logger)
        case let .bridge(bridgeName, mode):
            let bridge = try Bridge(name: bridgeName)
            mac = Self.chooseMAC(plan: plan, vmID: vmID, taken: taken, onBridge: bridge.knownMACs(), bridge: bridgeName,
                                 name: name, logger: logger)
            guard !NetInterface.exists(plan.tapName) else {
                throw HostNetworkError.tapExists(bridge: bridgeName, tap: plan.tapName, vmID: vmID)
            }
            var opened: TapDevice?
            if mode == .networkd {
                self.networkd = networkd
                let units = NetworkdUnits(tapName: plan.tapName, bridge: bridgeName, queues: spec.queues, mtu: spec.mtu, vmID: vmID.value)
                unitFiles = try networkd.write(units)
                logger.info("\(name): wrote \(unitFiles.joined(separator: " and "))")
                do {
                    opened = try Self.openFromNetworkd(units, networkd: networkd, name: name, logger: logger)
                } catch {
                    removeUnits()
                    throw error
                }
            } else {
                self.networkd = nil
            }
            do {
                let tap = try opened ?? Self.create(plan.tapName, on: bridge, spec: spec)
                self.tap = tap
                logger.info("\(name): TAP \(tap.name) on bridge \(bridgeName)\(opened != nil ? " (created by systemd-networkd)" : "")")
            } catch {
                removeUnits()
                throw error
            }
        }
        taken.insert(mac)
    }

    /// Closes volt-vmm's TAP fds (the kernel deletes a TAP we created once the worker's are
    /// closed too) and removes networkd units. Idempotent.
    func release() {
        tap = nil
        removeUnits()
    }

    deinit { removeUnits() }

    /// The networkd units this NIC wrote (removed at exit).
    var networkdUnitFiles: [String] { unitFiles }
    /// `networkctl`, when this NIC's units need a reload once removed.
    var networkctl: String? {
        guard !unitFiles.isEmpty, let networkd, networkd.unavailableReason() == nil else { return nil }
        return networkd.networkctl
    }

    /// Once volt-vmm has locked itself down, its units are removed and networkd reloaded
    /// by the launcher: `files` are the launcher's indices of `networkdUnitFiles`.
    private var launcher: (launcher: Launcher, files: [Int], reload: Int?)?

    func releaseThrough(_ launcher: Launcher, files: [Int], reload: Int?) {
        self.launcher = (launcher, files, reload)
    }

    private func removeUnits() {
        guard !unitFiles.isEmpty else { return }
        if let (launcher, files, reload) = launcher {
            removeUnits(through: launcher, files: files, reload: reload)
            return
        }
        for file in unitFiles { unlink(file) }
        logger.info("\(name): removed \(unitFiles.joined(separator: " and "))")
        unitFiles = []
        if let networkd, networkd.unavailableReason() == nil, let failure = networkd.reload() {
            logger.warning("\(name): \(failure)")
        }
    }

    /// A non-persistent TAP `tapName`, MTU set, joined to `bridge`, up.
    private func removeUnits(through launcher: Launcher, files: [Int], reload: Int?) {
        for (file, index) in zip(unitFiles, files) {
            do { try launcher.unlink(index) } catch { logger.warning("\(name): \(file): \(error)") }
        }
        logger.info("\(name): removed \(unitFiles.joined(separator: " and "))")
        unitFiles = []
        guard let reload else { return }
        do {
            let end = try launcher.runAndWait(reload)
            if end != .exited(0) { logger.warning("\(name): \(launcher.commands[reload].executable) reload: \(end)") }
        } catch {
            logger.warning("\(name): \(error)")
        }
    }

    private static func create(_ tapName: String, on bridge: Bridge, spec: NetSpec) throws -> TapDevice {
        let tap = try TapDevice(name: tapName, queuePairs: spec.queues)
        if let mtu = spec.mtu ?? bridge.mtu { try NetInterface.setMTU(tap.name, mtu) }
        try bridge.attach(tap.name)
        try NetInterface.setUp(tap.name)
        return tap
    }

    /// Asks networkd for the TAP and opens it; nil (after saying why in a log line) when
    /// networkd is not running, fails, or is too slow — the caller then creates it itself.
    private static func openFromNetworkd(_ units: NetworkdUnits, networkd: Networkd, name: String, logger: Logger) throws -> TapDevice? {
        if let reason = networkd.unavailableReason() ?? networkd.reload() {
            logger.notice("\(name): mode=networkd: \(reason) — falling back to creating \(units.tapName) directly")
            return nil
        }
        guard networkd.waitForInterface(units.tapName) else {
            logger.notice("\(name): mode=networkd: \(units.tapName) did not appear within \(networkd.timeoutMilliseconds) ms — falling back to creating it directly")
            return nil
        }
        let tap = try TapDevice(existing: units.tapName, queuePairs: units.queues)
        // networkd made it persistent: from now on it lives as long as our fds (and the worker's).
        if let first = tap.queues.first {
            let r = volt_tap_set_persist(first.rawValue, 0)
            if r < 0 { logger.warning("\(name): TUNSETPERSIST 0 on \(units.tapName): \(Errno(rawValue: -r)); it will outlive the VM") }
        }
        try NetInterface.setUp(units.tapName)
        return tap
    }

    /// The guest MAC: `mac=` as given (a clash only warns: the operator chose it), else the
    /// derived or random one, regenerated while the bridge or an earlier NIC already has it.
    static func chooseMAC(plan: NICPlan, vmID: VMID, taken: Set<MACAddress>, onBridge: Set<MACAddress>,
                          bridge: String?, name: String, logger: Logger) -> MACAddress {
        if let given = plan.spec.mac {
            if onBridge.contains(given) { logger.warning("\(name): mac=\(given) is already present on bridge \(bridge ?? "?")") }
            return given
        }
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        func candidate() -> MACAddress {
            vmID.isGiven ? NICIdentity.stableMAC(vmID: vmID.value, index: plan.index, attempt: attempt)
                : NICIdentity.randomMAC(using: &generator)
        }
        var mac = candidate()
        while taken.contains(mac) || onBridge.contains(mac) {
            attempt += 1
            let next = candidate()
            logger.notice("\(name): MAC \(mac) is already in use\(onBridge.contains(mac) ? " on bridge \(bridge ?? "?")" : "") — using \(next)")
            mac = next
        }
        return mac
    }

    /// INTERFACE=<name> from a sysfs uevent file.
    private static func interfaceName(_ uevent: String) -> String? {
        uevent.split(separator: "\n").first { $0.hasPrefix("INTERFACE=") }.map { String($0.dropFirst("INTERFACE=".count)) }
    }
}
