import CShim
import Glibc
import SystemPackage

/// A KVM vCPU fd and its shared kvm_run page. Used by exactly one thread after setup.
final class VCPU: @unchecked Sendable {
    let fd: Int32
    let index: Int
    let run: UnsafeMutablePointer<kvm_run>
    private let mmapSize: Int

    init(fd: Int32, index: Int, mmapSize: Int) throws(KVMError) {
        let p = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else {
            let err = Errno(rawValue: errno)
            close(fd)
            throw KVMError.mmap("kvm_run for vCPU \(index)", err)
        }
        self.fd = fd
        self.index = index
        self.mmapSize = mmapSize
        run = p.bindMemory(to: kvm_run.self, capacity: 1)
    }

    deinit {
        munmap(run, mmapSize)
        close(fd)
    }

    func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        try kvmIoctl(fd, VOLT_KVM_GET_REGS, &regs, "GET_REGS(vCPU \(index))")
        return regs
    }

    func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var regs = regs
        try kvmIoctl(fd, VOLT_KVM_SET_REGS, &regs, "SET_REGS(vCPU \(index))")
    }

    func specialRegisters() throws(KVMError) -> kvm_sregs {
        var sregs = kvm_sregs()
        try kvmIoctl(fd, VOLT_KVM_GET_SREGS, &sregs, "GET_SREGS(vCPU \(index))")
        return sregs
    }

    func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var sregs = sregs
        try kvmIoctl(fd, VOLT_KVM_SET_SREGS, &sregs, "SET_SREGS(vCPU \(index))")
    }

    func setFPU(_ fpu: kvm_fpu) throws(KVMError) {
        var fpu = fpu
        try kvmIoctl(fd, VOLT_KVM_SET_FPU, &fpu, "SET_FPU(vCPU \(index))")
    }

    func lapic() throws(KVMError) -> kvm_lapic_state {
        var state = kvm_lapic_state()
        try kvmIoctl(fd, VOLT_KVM_GET_LAPIC, &state, "GET_LAPIC(vCPU \(index))")
        return state
    }

    func setLAPIC(_ state: kvm_lapic_state) throws(KVMError) {
        var state = state
        try kvmIoctl(fd, VOLT_KVM_SET_LAPIC, &state, "SET_LAPIC(vCPU \(index))")
    }

    /// Sets MSRs; KVM reports how many it accepted, and all must be.
    func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        guard let buf = volt_msrs_alloc(UInt32(msrs.count)) else { throw KVMError.ioctl("SET_MSRS", .noMemory) }
        defer { free(buf) }
        let entries = volt_msrs_entries(buf)!
        for (i, msr) in msrs.enumerated() {
            entries[i].index = msr.index
            entries[i].data = msr.value
        }
        let accepted = try kvmIoctl(fd, VOLT_KVM_SET_MSRS, buf, "SET_MSRS(vCPU \(index))")
        guard accepted == msrs.count else {
            let rejected = msrs[Int(accepted)].index
            throw KVMError.ioctl("SET_MSRS(vCPU \(index)): MSR 0x\(String(rejected, radix: 16)) rejected", .invalidArgument)
        }
    }

    /// Reads MSRs (e.g. IA32_TSC); KVM reports how many it read, and all must be.
    func msrs(_ indices: [UInt32]) throws(KVMError) -> [UInt64] {
        guard let buf = volt_msrs_alloc(UInt32(indices.count)) else { throw KVMError.ioctl("GET_MSRS", .noMemory) }
        defer { free(buf) }
        let entries = volt_msrs_entries(buf)!
        for (i, index) in indices.enumerated() { entries[i].index = index }
        let read = try kvmIoctl(fd, VOLT_KVM_GET_MSRS, buf, "GET_MSRS(vCPU \(self.index))")
        guard read == indices.count else {
            throw KVMError.ioctl("GET_MSRS(vCPU \(self.index)): MSR 0x\(String(indices[Int(read)], radix: 16)) unreadable", .invalidArgument)
        }
        return (0..<indices.count).map { entries[$0].data }
    }

    /// The guest TSC's offset from the host's (KVM_VCPU_TSC_OFFSET, Linux 5.16+).
    func tscOffset() throws(KVMError) -> UInt64 {
        var value: UInt64 = 0
        try withUnsafeMutablePointer(to: &value) { (p) throws(KVMError) in
            var attr = volt_tsc_offset_attr(p)
            try kvmIoctl(fd, VOLT_KVM_GET_DEVICE_ATTR, &attr, "GET_DEVICE_ATTR(vCPU \(index), TSC offset)")
        }
        return value
    }

    func setTSCOffset(_ offset: UInt64) throws(KVMError) {
        var value = offset
        try withUnsafeMutablePointer(to: &value) { (p) throws(KVMError) in
            var attr = volt_tsc_offset_attr(p)
            try kvmIoctl(fd, VOLT_KVM_SET_DEVICE_ATTR, &attr, "SET_DEVICE_ATTR(vCPU \(index), TSC offset)")
        }
    }

    /// Asks KVM to return from KVM_RUN at the next opportunity (paired with a signal).
    func requestImmediateExit() {
        run.pointee.immediate_exit = 1
    }
}
