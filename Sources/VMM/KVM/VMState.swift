import CShim
import FoundationEssentials
import Glibc

/// The VM-wide state KVM holds, as a snapshot keeps it: the in-kernel PIC pair and
/// IOAPIC, the PIT, and kvmclock.
struct VMState: Codable, Equatable {
    /// KVM_GET_IRQCHIP for chips 0 (PIC master), 1 (PIC slave), 2 (IOAPIC), raw bytes.
    var irqchips: [Data]
    var pit: Data
    /// kvmclock in ns.
    var clock: UInt64

    static let chipIDs: [UInt32] = [UInt32(KVM_IRQCHIP_PIC_MASTER), UInt32(KVM_IRQCHIP_PIC_SLAVE), UInt32(KVM_IRQCHIP_IOAPIC)]
}

extension VirtualMachine {
    func captureState() throws(KVMError) -> VMState {
        var chips: [Data] = []
        for id in VMState.chipIDs {
            var chip = kvm_irqchip()
            chip.chip_id = id
            try kvmIoctl(fd, VOLT_KVM_GET_IRQCHIP, &chip, "GET_IRQCHIP(\(id))")
            chips.append(withUnsafeBytes(of: chip) { Data($0) })
        }
        var pit = kvm_pit_state2()
        try kvmIoctl(fd, VOLT_KVM_GET_PIT2, &pit, "GET_PIT2")
        return VMState(irqchips: chips, pit: withUnsafeBytes(of: pit) { Data($0) }, clock: try clock())
    }

    /// Puts the state back into a new VM (irqchip and PIT created, no vCPU running yet).
    func restoreState(_ s: VMState) throws(KVMError) {
        guard s.irqchips.count == VMState.chipIDs.count else {
            throw KVMError.stateSize("SET_IRQCHIP (chip count)", s.irqchips.count, VMState.chipIDs.count)
        }
        var pit = kvm_pit_state2()
        try Self.load(s.pit, into: &pit, "SET_PIT2")
        try kvmIoctl(fd, VOLT_KVM_SET_PIT2, &pit, "SET_PIT2")
        for (id, bytes) in zip(VMState.chipIDs, s.irqchips) {
            var chip = kvm_irqchip()
            try Self.load(bytes, into: &chip, "SET_IRQCHIP(\(id))")
            guard chip.chip_id == id else { throw KVMError.stateSize("SET_IRQCHIP: chip \(chip.chip_id) in the place of chip", Int(chip.chip_id), Int(id)) }
            try kvmIoctl(fd, VOLT_KVM_SET_IRQCHIP, &chip, "SET_IRQCHIP(\(id))")
        }
        try setClock(s.clock)
    }

    private static func load<T>(_ bytes: Data, into value: inout T, _ what: String) throws(KVMError) {
        guard bytes.count == MemoryLayout<T>.size else { throw KVMError.stateSize(what, bytes.count, MemoryLayout<T>.size) }
        withUnsafeMutableBytes(of: &value) { raw in _ = bytes.copyBytes(to: raw) }
    }
}
