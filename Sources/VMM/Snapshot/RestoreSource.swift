import CShim
import Glibc
import Logging
import SystemPackage

/// A snapshot to start from (`volt-vmm run --restore`, `PUT /snapshot/load`): its state,
/// checked against this host before anything is built, and its memory file.
public struct RestoreSource {
    let state: SnapshotState
    public let memoryPath: String
    /// Start with every vCPU paused (Firecracker's `resume_vm: false`).
    public var paused: Bool

    init(state: SnapshotState, memoryPath: String, paused: Bool) {
        self.state = state
        self.memoryPath = memoryPath
        self.paused = paused
    }

    /// The CPUID the snapshot's vCPUs had, if this host offers every feature in it: what
    /// volt-vmm would give the same VM here must include each of them.
    func cpuid(supported: [kvm_cpuid_entry2], hypervisor: Hypervisor) throws(SnapshotError) -> [[kvm_cpuid_entry2]] {
        guard state.xsaveSize == hypervisor.xsaveSize else {
            throw .hostLacksCPUFeatures("an XSAVE area of \(state.xsaveSize) bytes (this host's is \(hypervisor.xsaveSize))")
        }
        let hostMSRs: Set<UInt32>
        do { hostMSRs = Set(try hypervisor.msrIndexList()) } catch { throw .failed("\(error)") }
        let missingMSRs = state.vcpus.flatMap(\.msrs).map(\.index).filter { !hostMSRs.contains($0) }
        guard missingMSRs.isEmpty else {
            throw .hostLacksCPUFeatures("MSRs " + Set(missingMSRs).sorted().map { "0x" + String($0, radix: 16) }.joined(separator: ", "))
        }
        let count = UInt32(state.vcpus.count)
        return try state.cpuid.enumerated().map { (index, saved) throws(SnapshotError) in
            let here = CPUID.adjust(supported, vcpuIndex: UInt32(index), vcpuCount: count)
            for leaf in CPUIDFeatureLeaves.all {
                guard let was = saved.first(where: { $0.function == leaf.function && $0.index == leaf.index }) else { continue }
                let now = here.first { $0.function == leaf.function && $0.index == leaf.index }
                let lacking = leaf.bits(was.entry) & ~(now.map(leaf.bits) ?? 0)
                if lacking != 0 {
                    throw .hostLacksCPUFeatures("CPUID leaf 0x\(String(leaf.function, radix: 16)).\(leaf.index) \(leaf.register) bits 0x\(String(lacking, radix: 16))")
                }
            }
            return saved.map(\.entry)
        }
    }

    func loadMemory(into memory: GuestMemory, logger: Logger) throws(SnapshotError) {
        let fd = open(memoryPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .file(path: memoryPath, operation: "open", Errno(rawValue: errno)) }
        defer { close(fd) }
        let start = volt_monotonic_ns()
        let bytes = try MemoryFile.read(from: fd, path: memoryPath, into: memory)
        logger.info("restore: \(bytes >> 10) KiB of guest memory read from \(memoryPath) in \((volt_monotonic_ns() - start) / 1000) µs")
    }

    /// The legacy devices and each transport as they were; live devices start their rings
    /// where they stopped (fresh workers get the driver's setup first).
    func restoreDevices(serial: Serial8250, i8042: I8042, transports: [VirtioMMIOTransport]) throws {
        try serial.restore(state.serial)
        try i8042.restore(state.i8042)
        guard transports.count == state.transports.count else {
            throw SnapshotError.invalid("\(state.transports.count) transports saved, \(transports.count) devices made")
        }
        for (transport, saved) in zip(transports, state.transports) {
            try transport.restore(saved.state, bases: saved.bases)
        }
    }
}

/// The CPUID registers that are feature flags (a restored guest may have used any bit set
/// in them): the rest of CPUID describes topology, caches and sizes.
struct CPUIDFeatureLeaves {
    let function: UInt32
    let index: UInt32
    let register: String
    let bits: (kvm_cpuid_entry2) -> UInt32

    static let all: [CPUIDFeatureLeaves] = [
        .init(function: 1, index: 0, register: "ECX", bits: { $0.ecx }),
        .init(function: 1, index: 0, register: "EDX", bits: { $0.edx }),
        .init(function: 7, index: 0, register: "EBX", bits: { $0.ebx }),
        .init(function: 7, index: 0, register: "ECX", bits: { $0.ecx }),
        .init(function: 7, index: 0, register: "EDX", bits: { $0.edx }),
        .init(function: 0xd, index: 1, register: "EAX", bits: { $0.eax }),
        .init(function: 0x8000_0001, index: 0, register: "ECX", bits: { $0.ecx }),
        .init(function: 0x8000_0001, index: 0, register: "EDX", bits: { $0.edx }),
    ]
}

extension RestoreSource {
    /// Reads and checks `statePath` (its memory file is checked when it is read).
    public static func load(statePath: String, memoryPath: String, paused: Bool) throws(SnapshotError) -> RestoreSource {
        RestoreSource(state: try SnapshotFile.read(path: statePath), memoryPath: memoryPath, paused: paused)
    }

    /// The device names a restore may rename host resources by: each device's API id
    /// when it had one, and its name (disk0, net1, ...).
    public var deviceNames: [[String]] {
        state.devices.enumerated().map { i, d in
            [state.deviceIDs.indices.contains(i) ? state.deviceIDs[i] : nil, "\(d.kind)\(i)"].compactMap { $0 }
        }
    }

    /// The machine to build: the snapshot's memory, vCPUs and devices, with host resources
    /// renamed by `overrides` (device name or API id -> a disk image path or a TAP name),
    /// since a clone needs its own.
    public func machineConfig(vmID: VMID, overrides: [String: String] = [:]) throws(SnapshotError) -> MachineConfig {
        var unused = Set(overrides.keys)
        var devices: [VirtioDeviceSpec] = []
        for (i, saved) in state.devices.enumerated() {
            let names = deviceNames[i]
            let renamed = names.lazy.compactMap { overrides[$0] }.first
            names.forEach { unused.remove($0) }
            switch saved {
            case let .disk(path, readOnly, direct, queues, serial, bytes):
                let image = renamed ?? path
                var st = stat()
                guard stat(image, &st) == 0 else { throw .file(path: image, operation: "stat (disk \(names.last!))", Errno(rawValue: errno)) }
                guard UInt64(st.st_size) == bytes else {
                    throw .invalid("disk \(names.last!): \(image) has \(st.st_size) bytes, the snapshot's guest saw \(bytes) — give an image of that size (a copy of the original)")
                }
                devices.append(.disk(DiskSpec(path: image, readOnly: readOnly, direct: direct, queues: queues, serial: serial)))
            case let .net(tap, bridge, networkd, mac, mtu, queues, id):
                guard let address = MACAddress(mac) else { throw .invalid("net \(names.last!): MAC \(mac)") }
                let host: NetSpec.Host
                if let renamed { host = .tap(renamed) }
                else if let tap { host = .tap(tap) }
                else if let bridge { host = .bridge(bridge, mode: networkd ? .networkd : .direct) }
                else { throw .invalid("net \(names.last!): no TAP and no bridge") }
                devices.append(.net(NetSpec(host: host, mac: address, mtu: mtu, queues: queues, id: id)))
            case let .entropy(bandwidth, ops):
                devices.append(.entropy(EntropySpec(bandwidth: bandwidth?.spec, ops: ops?.spec)))
            }
        }
        guard unused.isEmpty else {
            throw .invalid("no device named \(unused.sorted().joined(separator: ", ")) to rename (devices: \(deviceNames.map { $0.joined(separator: "/") }.joined(separator: ", ")))")
        }
        var config = MachineConfig(kernelPath: "", cmdline: state.cmdline, memoryBytes: state.memoryBytes, vcpus: state.vcpus.count,
                                   devices: devices, vmID: vmID)
        config.deviceIDs = state.deviceIDs
        config.restore = self
        return config
    }
}
