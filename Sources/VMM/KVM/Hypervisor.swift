import CShim
import Glibc
import SystemPackage

/// The open /dev/kvm system fd: version and capability checks, and VM creation.
final class Hypervisor {
    let fd: Int32

    init(path: String = "/dev/kvm") throws(KVMError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw KVMError.open(Errno(rawValue: errno)) }
        self.fd = fd
        let version = volt_ioctl_int(fd, VOLT_KVM_GET_API_VERSION, 0)
        guard version == KVM_API_VERSION else {
            close(fd)
            throw KVMError.apiVersion(version)
        }
        for (cap, name) in [(KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"), (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
                            (KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"), (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"),
                            (KVM_CAP_PIT2, "KVM_CAP_PIT2"), (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID")]
        where checkExtension(cap) <= 0 {
            close(fd)
            throw KVMError.missingCapability(name)
        }
    }

    deinit { close(fd) }

    func checkExtension(_ cap: Int32) -> Int32 {
        volt_ioctl_int(fd, VOLT_KVM_CHECK_EXTENSION, UInt(cap))
    }

    /// The most vCPUs a VM may have: KVM's recommended count (NR_VCPUS), falling back to MAX_VCPUS.
    var maxVCPUs: Int {
        let recommended = checkExtension(KVM_CAP_NR_VCPUS)
        let hard = checkExtension(KVM_CAP_MAX_VCPUS)
        return Int(recommended > 0 ? recommended : (hard > 0 ? hard : 4))
    }

    /// The MSRs KVM saves and restores for a vCPU (KVM_GET_MSR_INDEX_LIST).
    func msrIndexList() throws(KVMError) -> [UInt32] {
        var count: UInt32 = 0
        var probe = kvm_msr_list()
        if volt_ioctl(fd, VOLT_KVM_GET_MSR_INDEX_LIST, &probe) == -E2BIG { count = probe.nmsrs }
        guard count > 0, let list = volt_msr_list_alloc(count) else { return [] }
        defer { free(list) }
        try kvmIoctl(fd, VOLT_KVM_GET_MSR_INDEX_LIST, list, "GET_MSR_INDEX_LIST")
        let indices = volt_msr_list_indices(list)!
        return (0..<Int(list.pointee.nmsrs)).map { indices[$0] }
    }

    /// Bytes of a vCPU's XSAVE area (KVM_CAP_XSAVE2; 4096 without it).
    var xsaveSize: Int { max(Int(checkExtension(KVM_CAP_XSAVE2)), MemoryLayout<kvm_xsave>.size) }

    func vcpuMmapSize() throws(KVMError) -> Int {
        Int(try kvmIoctl(fd, VOLT_KVM_GET_VCPU_MMAP_SIZE, value: 0, "GET_VCPU_MMAP_SIZE"))
    }
}
