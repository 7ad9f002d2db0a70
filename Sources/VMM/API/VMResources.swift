import IPC

/// Everything a VM is made of, as Firecracker's API and config file describe it: what
/// `GET /vm/config` returns and `InstanceStart` builds. The CLI's flags become one too
/// (the initial configuration), keeping what Firecracker cannot say (bridge NICs, disk
/// options, faults) in the device specs they carry.
public struct VMResources: Equatable {
    public var bootSource: BootSourceConfig?
    public var machine = MachineConfiguration()
    public var drives: [DriveConfig] = []
    public var networkInterfaces: [NetworkInterfaceConfig] = []
    public var entropy: EntropySpec?
    public var logger: LoggerConfig?
    public var metrics: MetricsConfig?
    /// Devices the CLI gave that Firecracker has no name for (`--vhost-user-net`).
    public var otherDevices: [VirtioDeviceSpec] = []
    /// `--fault` flags, applied to the devices at start.
    public var faults: [String] = []

    public init() {}

    /// Adds or replaces the drive of that id (PUT /drives/{id}); one root device at most.
    public mutating func put(drive: DriveConfig) throws(APIFault) {
        if drive.isRootDevice, let other = drives.first(where: { $0.isRootDevice && $0.id != drive.id }) {
            throw APIFault("drive \(other.id) is already the root device: only one drive may have is_root_device true")
        }
        if let i = drives.firstIndex(where: { $0.id == drive.id }) { drives[i] = drive } else {
            try checkRoomForDevice("drive \(drive.id)")
            drives.append(drive)
        }
    }

    public mutating func put(networkInterface nic: NetworkInterfaceConfig) throws(APIFault) {
        if let tap = nic.spec.tap, let other = networkInterfaces.first(where: { $0.spec.tap == tap && $0.id != nic.id }) {
            throw APIFault("host_dev_name \(tap) is already used by network interface \(other.id)")
        }
        if let mac = nic.spec.mac, let other = networkInterfaces.first(where: { $0.spec.mac == mac && $0.id != nic.id }) {
            throw APIFault("guest_mac \(mac) is already used by network interface \(other.id)")
        }
        if let i = networkInterfaces.firstIndex(where: { $0.id == nic.id }) { networkInterfaces[i] = nic } else {
            try checkRoomForDevice("network interface \(nic.id)")
            networkInterfaces.append(nic)
        }
    }

    /// virtio-mmio has room for `VirtioDevices.maxDevices` devices in all.
    private func checkRoomForDevice(_ what: String) throws(APIFault) {
        let count = drives.count + networkInterfaces.count + (entropy == nil ? 0 : 1) + otherDevices.count
        guard count < VirtioDevices.maxDevices else {
            throw APIFault("\(what): volt-vmm has room for \(VirtioDevices.maxDevices) virtio devices and \(count) are configured")
        }
    }

    /// Firecracker's FullVmConfiguration.
    var json: String {
        JSONText.object([
            ("balloon", "null"), ("drives", JSONText.array(drives.map(\.json))),
            ("boot-source", JSONText.orNull(bootSource?.json)), ("cpu-config", "null"),
            ("logger", JSONText.orNull(logger?.json)), ("machine-config", machine.json), ("metrics", JSONText.orNull(metrics?.json)),
            ("mmds-config", "null"), ("network-interfaces", JSONText.array(networkInterfaces.map(\.json))),
            ("vsock", "null"), ("entropy", JSONText.orNull(entropy?.apiJSON)),
        ])
    }

    /// The machine `InstanceStart` builds: the root drive first (it is /dev/vda, as in
    /// Firecracker) and `root=` added to the kernel command line for it.
    public func machineConfig(vmID: VMID, kernelStore: String? = nil, defaultCmdline: String) throws -> MachineConfig {
        guard let boot = bootSource else {
            throw APIFault("no boot source: PUT /boot-source with kernel_image_path first")
        }
        let kernel: String
        do { kernel = try KernelStore.resolve(boot.kernelImagePath, store: kernelStore) } catch { throw APIFault("\(error)") }
        let ordered = drives.filter(\.isRootDevice) + drives.filter { !$0.isRootDevice }
        var cmdline = boot.bootArgs ?? defaultCmdline
        if let root = ordered.first, root.isRootDevice {
            let readOnly: Bool
            if case let .image(disk) = root.backend { readOnly = disk.readOnly } else { readOnly = false }
            cmdline += " root=" + (root.partuuid.map { "PARTUUID=\($0)" } ?? "/dev/vda") + (readOnly ? " ro" : " rw")
        }
        // Firecracker's order: the drives as listed (the root drive first, vhost-user ones
        // among them), then the NICs, then entropy. `--fault` names a device by its place
        // in this list (disk0, net1, ...).
        var devices = ordered.map(\.device)
        devices += networkInterfaces.map { .net($0.spec) } + (entropy.map { [.entropy($0)] } ?? [])
        devices += otherDevices
        try FaultOption.apply(faults, to: &devices)
        _ = try NICPlan.plans(for: networkInterfaces.map(\.spec), vmID: vmID)
        var config = MachineConfig(kernelPath: kernel, initrdPath: boot.initrdPath, cmdline: cmdline,
                                   memoryBytes: UInt64(machine.memSizeMiB) << 20, vcpus: machine.vcpuCount,
                                   devices: devices, vmID: vmID)
        config.metricsPath = metrics?.metricsPath
        config.deviceIDs = ordered.map(\.id) + networkInterfaces.map(\.id) + (entropy == nil ? [] : [nil])
        return config
    }
}

extension VMResources {
    /// The configuration of a VM restored from `source` (built as `config`), as GET
    /// /vm/config shows it; logger and metrics stay those configured before the load.
    public init(restoring source: RestoreSource, config: MachineConfig, keeping current: VMResources) {
        self.init()
        machine = MachineConfiguration(vcpuCount: config.vcpus, memSizeMiB: Int(config.memoryBytes >> 20))
        logger = current.logger
        metrics = current.metrics
        let names = source.deviceNames
        for (i, device) in config.devices.enumerated() {
            let id = names[i].first ?? "\(device.kind)\(i)"
            switch device {
            case let .disk(disk): drives.append(DriveConfig(id: id, backend: .image(disk)))
            case let .net(net): networkInterfaces.append(NetworkInterfaceConfig(id: id, spec: net))
            case let .entropy(e): entropy = e
            case .vhostUserBlock, .vhostUserNet: break
            }
        }
    }
}
