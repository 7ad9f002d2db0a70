import CShim
import Glibc
import SystemPackage

enum CPUIDError: Error, Equatable, CustomStringConvertible {
    case outOfMemory
    case ioctl(request: String, errno: Int32)

    var description: String {
        switch self {
        case .outOfMemory: return "cannot allocate a CPUID buffer"
        case let .ioctl(request, errno): return "\(request): \(Errno(rawValue: errno))"
        }
    }
}

/// The CPUID a vCPU sees: KVM's supported set, adjusted per vCPU for topology and for
/// what a VM should (not) claim. Topology model: one package, `vcpuCount` cores, one
/// thread per core, x2APIC id = initial APIC id = vCPU index (KVM's default APIC id).
/// Leaf layouts: Intel SDM vol. 2A, CPUID instruction; KVM leaves: Documentation/virt/kvm/x86/cpuid.rst.
enum CPUID {
    /// KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry is selected by ECX (subleaf) too.
    static let significantIndex: UInt32 = 1
    /// Beyond KVM_MAX_CPUID_ENTRIES (256) with room to spare; stops the E2BIG loop.
    static let maxEntries: UInt32 = 2048

    static let kvmSignatureLeaf: UInt32 = 0x4000_0000
    static let kvmFeaturesLeaf: UInt32 = 0x4000_0001
    /// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX.
    static let kvmSignature: (ebx: UInt32, ecx: UInt32, edx: UInt32) = (0x4b4d_564b, 0x564b_4d56, 0x0000_004d)

    // Leaf 1 bits.
    static let hypervisorBit: UInt32 = 1 << 31      // ECX
    static let tscDeadlineBit: UInt32 = 1 << 24     // ECX
    static let httBit: UInt32 = 1 << 28             // EDX: EBX[23:16] is valid
    static let clflushLineSize: UInt32 = 8          // in 8-byte units: 64-byte lines
    // Leaf 6 bits.
    static let aratBit: UInt32 = 1 << 2             // EAX: APIC timer always running
    static let epbBit: UInt32 = 1 << 3              // ECX: IA32_ENERGY_PERF_BIAS

    /// Number of low x2APIC id bits that select the core inside the package.
    static func coreIDBits(vcpuCount: UInt32) -> UInt32 {
        vcpuCount <= 1 ? 0 : UInt32(32 - (vcpuCount - 1).leadingZeroBitCount)
    }

    /// `supported` (from KVM_GET_SUPPORTED_CPUID) adjusted for vCPU `vcpuIndex` of `vcpuCount`.
    /// Leaves not mentioned pass through unchanged, so features stay what KVM can virtualize
    /// (e.g. TSC-deadline in leaf 1 ECX is present only if KVM reported it).
    static func adjust(_ supported: [kvm_cpuid_entry2], vcpuIndex: UInt32, vcpuCount: UInt32) -> [kvm_cpuid_entry2] {
        let count = max(vcpuCount, 1)
        var result: [kvm_cpuid_entry2] = []
        var emittedTopology: Set<UInt32> = []
        for var entry in supported {
            switch entry.function {
            case 0x1:
                // EBX: [7:0] brand index kept, [15:8] CLFLUSH size, [23:16] addressable
                // logical processors in the package, [31:24] initial APIC id.
                entry.ebx = (entry.ebx & 0xff) | clflushLineSize << 8
                    | min(count, 0xff) << 16 | (vcpuIndex & 0xff) << 24
                entry.ecx |= hypervisorBit
                if count > 1 { entry.edx |= httBit } else { entry.edx &= ~httBit }
            case 0x4:
                // Deterministic cache parameters: EAX[31:26] = cores per package - 1,
                // EAX[25:14] = logical processors sharing the cache - 1. With one thread per
                // core, L1/L2 are private; L3 (and beyond) is shared by the whole package.
                guard entry.eax & 0x1f != 0 else { break }   // cache type 0: no more caches
                let level = (entry.eax >> 5) & 0x7
                let sharing = level >= 3 ? min(count - 1, 0xfff) : 0
                entry.eax = (entry.eax & 0x3fff) | sharing << 14 | (min(count, 64) - 1) << 26
            case 0x6:
                // Thermal and power management: a VM has no sensors, turbo or HWP, and
                // KVM does not emulate IA32_ENERGY_PERF_BIAS. Keep only ARAT.
                entry.eax &= aratBit
                entry.ebx = 0
                entry.ecx &= ~epbBit
                entry.edx = 0
            case 0xa:
                // Architectural PMU: version 0 tells the guest there is no vPMU.
                entry.eax = 0; entry.ebx = 0; entry.ecx = 0; entry.edx = 0
            case 0xb, 0x1f:
                // Extended topology: replace KVM's (host-shaped) subleaves with ours.
                if emittedTopology.insert(entry.function).inserted {
                    result += topologyLeaf(entry.function, vcpuIndex: vcpuIndex, vcpuCount: count)
                }
                continue
            case 0x8000_0008:
                // AMD: ECX[7:0] = cores in the package - 1 (NC), ECX[15:12] = x2APIC id bits
                // for the core (ApicIdSize); older Linux reads these instead of leaf 0xb.
                // Intel defines ECX as reserved (0), so only rewrite a host that fills it in.
                guard entry.ecx & 0xf0ff != 0 else { break }
                entry.ecx = (entry.ecx & ~0xf0ff) | coreIDBits(vcpuCount: count) << 12 | min(count - 1, 0xff)
            case kvmSignatureLeaf:
                entry.ebx = kvmSignature.ebx; entry.ecx = kvmSignature.ecx; entry.edx = kvmSignature.edx
                if entry.eax < kvmFeaturesLeaf { entry.eax = kvmFeaturesLeaf }
            default:
                break
            }
            result.append(entry)
        }
        // KVM always reports its leaves; if an odd host left the signature out but kept
        // the feature leaf, add the signature so the guest looks there at all.
        if !result.contains(where: { $0.function == kvmSignatureLeaf }),
           result.contains(where: { $0.function == kvmFeaturesLeaf }) {
            var signature = kvm_cpuid_entry2()
            signature.function = kvmSignatureLeaf
            signature.eax = kvmFeaturesLeaf
            signature.ebx = kvmSignature.ebx; signature.ecx = kvmSignature.ecx; signature.edx = kvmSignature.edx
            result.append(signature)
        }
        return result
    }

    /// Leaf 0xb (or 0x1f, same shape) subleaves: 0 = SMT level, 1 = core level, 2 = the
    /// invalid level that ends the list. EAX[4:0] = x2APIC id shift to the next level,
    /// EBX[15:0] = logical processors at this level, ECX[7:0] = subleaf, ECX[15:8] = level
    /// type (1 SMT, 2 core, 0 invalid), EDX = this vCPU's x2APIC id.
    static func topologyLeaf(_ function: UInt32, vcpuIndex: UInt32, vcpuCount: UInt32) -> [kvm_cpuid_entry2] {
        let levels: [(shift: UInt32, processors: UInt32, type: UInt32)] = [
            (0, 1, 1),                                              // one thread per core
            (coreIDBits(vcpuCount: vcpuCount), vcpuCount, 2),       // all vCPUs in one package
            (0, 0, 0),
        ]
        return levels.enumerated().map { subleaf, level in
            var entry = kvm_cpuid_entry2()
            entry.function = function
            entry.index = UInt32(subleaf)
            entry.flags = significantIndex
            entry.eax = level.shift
            entry.ebx = level.processors
            entry.ecx = UInt32(subleaf) | level.type << 8
            entry.edx = vcpuIndex
            return entry
        }
    }

    /// KVM_GET_SUPPORTED_CPUID on the /dev/kvm fd, growing the buffer while KVM says E2BIG.
    static func supported(kvmFD: Int32) throws(CPUIDError) -> [kvm_cpuid_entry2] {
        var capacity: UInt32 = 64
        while true {
            guard let buffer = volt_cpuid2_alloc(capacity) else { throw .outOfMemory }
            defer { free(buffer) }
            let result = volt_ioctl(kvmFD, VOLT_KVM_GET_SUPPORTED_CPUID, buffer)
            if result == -E2BIG, capacity < maxEntries {
                capacity *= 2
                continue
            }
            guard result >= 0 else { throw .ioctl(request: "KVM_GET_SUPPORTED_CPUID", errno: -result) }
            // KVM rewrites nent with the number of entries it filled in.
            let count = Int(min(buffer.pointee.nent, capacity))
            return Array(UnsafeBufferPointer(start: volt_cpuid2_entries(buffer), count: count))
        }
    }

    /// KVM_SET_CPUID2 on a vCPU fd (before its first KVM_RUN).
    static func set(vcpuFD: Int32, entries: [kvm_cpuid_entry2]) throws(CPUIDError) {
        guard let buffer = volt_cpuid2_alloc(UInt32(entries.count)) else { throw .outOfMemory }
        defer { free(buffer) }
        let destination = volt_cpuid2_entries(buffer)!
        for (slot, entry) in entries.enumerated() { destination[slot] = entry }
        let result = volt_ioctl(vcpuFD, VOLT_KVM_SET_CPUID2, buffer)
        guard result >= 0 else { throw .ioctl(request: "KVM_SET_CPUID2", errno: -result) }
    }
}
