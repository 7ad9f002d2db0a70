import CShim
import FoundationEssentials
import Glibc
import SystemPackage

/// Everything KVM holds for one vCPU, as a snapshot keeps it: each KVM structure as its
/// raw bytes (its size is checked on the way back), the MSRs by index, and the TSC rate.
/// The CPUID a vCPU was given is the machine's (`SnapshotState.cpuid`).
struct VCPUState: Codable, Equatable {
    var regs: Data
    var sregs: Data
    var xsave: Data
    var xcrs: Data
    var debugRegs: Data
    var lapic: Data
    var mpState: Data
    var events: Data
    var msrs: [MSR]
    var tscKHz: UInt32

    struct MSR: Codable, Equatable {
        var index: UInt32
        var value: UInt64
    }

    /// IA32_TSC_DEADLINE: KVM ignores it unless the LAPIC timer is in TSC-deadline mode,
    /// so it goes back after the LAPIC.
    static let tscDeadlineMSR: UInt32 = 0x6e0
}

extension VCPU {
    /// Reads the vCPU's whole state. It must not be running (a parked or new vCPU).
    func captureState(msrIndices: [UInt32], xsaveSize: Int) throws(KVMError) -> VCPUState {
        VCPUState(
            regs: try get(VOLT_KVM_GET_REGS, kvm_regs.self, "GET_REGS"),
            sregs: try get(VOLT_KVM_GET_SREGS, kvm_sregs.self, "GET_SREGS"),
            xsave: try getBytes(xsaveSize > MemoryLayout<kvm_xsave>.size ? VOLT_KVM_GET_XSAVE2 : VOLT_KVM_GET_XSAVE,
                                size: max(xsaveSize, MemoryLayout<kvm_xsave>.size), "GET_XSAVE"),
            xcrs: try get(VOLT_KVM_GET_XCRS, kvm_xcrs.self, "GET_XCRS"),
            debugRegs: try get(VOLT_KVM_GET_DEBUGREGS, kvm_debugregs.self, "GET_DEBUGREGS"),
            lapic: try get(VOLT_KVM_GET_LAPIC, kvm_lapic_state.self, "GET_LAPIC"),
            mpState: try get(VOLT_KVM_GET_MP_STATE, kvm_mp_state.self, "GET_MP_STATE"),
            events: try get(VOLT_KVM_GET_VCPU_EVENTS, kvm_vcpu_events.self, "GET_VCPU_EVENTS"),
            msrs: zip(msrIndices, try msrs(msrIndices)).map { VCPUState.MSR(index: $0, value: $1) },
            tscKHz: UInt32(try kvmIoctl(fd, VOLT_KVM_GET_TSC_KHZ, value: 0, "GET_TSC_KHZ(vCPU \(index))")))
    }

    /// Puts a captured state back into a new vCPU whose CPUID is already set, in the order
    /// KVM needs: MSRs before the registers that depend on them, the LAPIC before the
    /// TSC deadline, events last.
    func restoreState(_ s: VCPUState) throws(KVMError) {
        if s.tscKHz != 0 {
            let current = UInt32(try kvmIoctl(fd, VOLT_KVM_GET_TSC_KHZ, value: 0, "GET_TSC_KHZ(vCPU \(index))"))
            if current != s.tscKHz {
                try kvmIoctl(fd, VOLT_KVM_SET_TSC_KHZ, value: UInt(s.tscKHz), "SET_TSC_KHZ(vCPU \(index), \(s.tscKHz) kHz)")
            }
        }
        let deadline = s.msrs.filter { $0.index == VCPUState.tscDeadlineMSR }
        try setMSRs(s.msrs.filter { $0.index != VCPUState.tscDeadlineMSR }.map { ($0.index, $0.value) })
        try set(VOLT_KVM_SET_REGS, s.regs, kvm_regs.self, "SET_REGS")
        try set(VOLT_KVM_SET_SREGS, s.sregs, kvm_sregs.self, "SET_SREGS")
        try setBytes(VOLT_KVM_SET_XSAVE, s.xsave, minimum: MemoryLayout<kvm_xsave>.size, "SET_XSAVE")
        try set(VOLT_KVM_SET_XCRS, s.xcrs, kvm_xcrs.self, "SET_XCRS")
        try set(VOLT_KVM_SET_DEBUGREGS, s.debugRegs, kvm_debugregs.self, "SET_DEBUGREGS")
        try set(VOLT_KVM_SET_LAPIC, s.lapic, kvm_lapic_state.self, "SET_LAPIC")
        if !deadline.isEmpty { try setMSRs(deadline.map { ($0.index, $0.value) }) }
        try set(VOLT_KVM_SET_MP_STATE, s.mpState, kvm_mp_state.self, "SET_MP_STATE")
        try set(VOLT_KVM_SET_VCPU_EVENTS, s.events, kvm_vcpu_events.self, "SET_VCPU_EVENTS")
    }

    private func get<T>(_ request: UInt, _ type: T.Type, _ what: String) throws(KVMError) -> Data {
        try getBytes(request, size: MemoryLayout<T>.size, what)
    }

    private func getBytes(_ request: UInt, size: Int, _ what: String) throws(KVMError) -> Data {
        var bytes = Data(count: size)
        let r = bytes.withUnsafeMutableBytes { volt_ioctl(fd, request, $0.baseAddress) }
        guard r >= 0 else { throw KVMError.ioctl("\(what)(vCPU \(index))", Errno(rawValue: -r)) }
        return bytes
    }

    private func set<T>(_ request: UInt, _ bytes: Data, _ type: T.Type, _ what: String) throws(KVMError) {
        guard bytes.count == MemoryLayout<T>.size else { throw KVMError.stateSize(what, bytes.count, MemoryLayout<T>.size) }
        try setBytes(request, bytes, minimum: bytes.count, what)
    }

    private func setBytes(_ request: UInt, _ bytes: Data, minimum: Int, _ what: String) throws(KVMError) {
        guard bytes.count >= minimum else { throw KVMError.stateSize(what, bytes.count, minimum) }
        var copy = bytes
        let r = copy.withUnsafeMutableBytes { volt_ioctl(fd, request, $0.baseAddress) }
        guard r >= 0 else { throw KVMError.ioctl("\(what)(vCPU \(index))", Errno(rawValue: -r)) }
    }
}
