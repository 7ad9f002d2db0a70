import CShim
import FoundationEssentials
import IPC

/// Everything a snapshot's state file holds: the machine's shape and devices (their host
/// resources by name, which a restore may rename), KVM's state per vCPU and for the VM,
/// the legacy devices, and each virtio-mmio transport with its rings' bases. Guest memory
/// is the separate memory file. Written by `SnapshotFile` (versioned, checksummed).
struct SnapshotState: Codable, Equatable {
    var vmmVersion: String
    var memoryBytes: UInt64
    var cmdline: String
    var devices: [SavedDevice]
    /// Each device's id in the API (a drive_id, an iface_id), when it had one.
    var deviceIDs: [String?]
    /// The CPUID each vCPU was given (it is not KVM's to report back).
    var cpuid: [[SavedCPUIDEntry]]
    var xsaveSize: Int
    var vcpus: [VCPUState]
    var vm: VMState
    var serial: Serial8250.Registers
    var i8042: I8042.State
    var transports: [SavedTransport]

    /// Limits a state file is checked against before anything is built from it.
    static let maxMemoryBytes: UInt64 = 1 << 42
    static let maxVCPUs = 256

    func validate() throws(SnapshotError) {
        guard memoryBytes >= Layout.minimumMemory, memoryBytes <= Self.maxMemoryBytes, memoryBytes % 4096 == 0 else {
            throw .invalid("guest memory of \(memoryBytes) bytes")
        }
        guard (1...Self.maxVCPUs).contains(vcpus.count), cpuid.count == vcpus.count else {
            throw .invalid("\(vcpus.count) vCPU states and \(cpuid.count) CPUID tables")
        }
        guard devices.count == transports.count, deviceIDs.count == devices.count, devices.count <= VirtioDevices.maxDevices else {
            throw .invalid("\(devices.count) devices and \(transports.count) transports")
        }
        guard cpuid.allSatisfy({ $0.count <= Int(CPUID.maxEntries) }) else { throw .invalid("a CPUID table over \(CPUID.maxEntries) entries") }
    }
}

/// One CPUID entry as KVM_SET_CPUID2 takes it.
struct SavedCPUIDEntry: Codable, Equatable {
    var function: UInt32
    var index: UInt32
    var flags: UInt32
    var eax: UInt32
    var ebx: UInt32
    var ecx: UInt32
    var edx: UInt32

    init(_ e: kvm_cpuid_entry2) {
        function = e.function; index = e.index; flags = e.flags
        eax = e.eax; ebx = e.ebx; ecx = e.ecx; edx = e.edx
    }

    var entry: kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        e.function = function; e.index = index; e.flags = flags
        e.eax = eax; e.ebx = ebx; e.ecx = ecx; e.edx = edx
        return e
    }
}

/// A virtio-mmio transport's registers and, for a live device, where each ring stopped.
struct SavedTransport: Codable, Equatable {
    var state: VirtioMMIOTransport.State
    var bases: [Int: UInt16]
}

/// A device as the snapshot names it: what kind, and the host resources it used, so a
/// restore can spawn the same worker (or one on a renamed image or TAP).
enum SavedDevice: Codable, Equatable {
    case disk(path: String, readOnly: Bool, direct: Bool, queues: Int, serial: String?, bytes: UInt64)
    case net(tap: String?, bridge: String?, networkd: Bool, mac: String, mtu: Int?, queues: Int, id: String?)
    case entropy(bandwidth: SavedBucket?, ops: SavedBucket?)

    var kind: String {
        switch self {
        case .disk: return "disk"
        case .net: return "net"
        case .entropy: return "rng"
        }
    }
}

struct SavedBucket: Codable, Equatable {
    var size: UInt64
    var refillMilliseconds: UInt64
    var oneTimeBurst: UInt64

    init(_ b: TokenBucketSpec) { size = b.size; refillMilliseconds = b.refillMilliseconds; oneTimeBurst = b.oneTimeBurst }
    var spec: TokenBucketSpec { TokenBucketSpec(size: size, refillMilliseconds: refillMilliseconds, oneTimeBurst: oneTimeBurst) }
}
