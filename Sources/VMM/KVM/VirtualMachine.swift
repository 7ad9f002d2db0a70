import CShim
import Glibc
import SystemPackage

/// One KVM VM: its memory slots, the in-kernel interrupt controllers and PIT, interrupt
/// lines, and vCPU creation.
final class VirtualMachine: @unchecked Sendable {
    let fd: Int32
    let hypervisor: Hypervisor

    /// Creates the VM with `memory` registered. Order matters for startup time: memory
    /// slots registered before KVM_CREATE_IRQCHIP cost ~0.1 ms; after it, the first slot
    /// waits for an SRCU grace period (5-10 ms measured here).
    init(hypervisor: Hypervisor, memory: GuestMemory) throws(KVMError) {
        self.hypervisor = hypervisor
        fd = try kvmIoctl(hypervisor.fd, VOLT_KVM_CREATE_VM, value: 0, "CREATE_VM")
        do {
            // Intel VMX needs these pages for real-mode emulation; harmless elsewhere.
            try kvmIoctl(fd, VOLT_KVM_SET_TSS_ADDR, value: UInt(Layout.kvmTSSAddress), "SET_TSS_ADDR")
            var identity = Layout.kvmIdentityMapAddress
            try kvmIoctl(fd, VOLT_KVM_SET_IDENTITY_MAP_ADDR, &identity, "SET_IDENTITY_MAP_ADDR")
            try register(memory: memory)
            // PIC pair + IOAPIC + LAPICs in the kernel: HLT and interrupt delivery never exit to us.
            try kvmIoctl(fd, VOLT_KVM_CREATE_IRQCHIP, nil, "CREATE_IRQCHIP")
            var pit = kvm_pit_config()
            pit.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
            try kvmIoctl(fd, VOLT_KVM_CREATE_PIT2, &pit, "CREATE_PIT2")
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Registers every region of guest memory as a KVM memory slot.
    private func register(memory: GuestMemory) throws(KVMError) {
        for (slot, region) in memory.regions.enumerated() {
            var r = kvm_userspace_memory_region(
                slot: UInt32(slot), flags: 0, guest_phys_addr: region.guestBase,
                memory_size: region.size, userspace_addr: memory.hostAddress(of: region))
            try kvmIoctl(fd, VOLT_KVM_SET_USER_MEMORY_REGION, &r, "SET_USER_MEMORY_REGION(slot \(slot))")
        }
    }

    /// Drives an interrupt line of the in-kernel PIC/IOAPIC.
    func setIRQLine(_ irq: UInt32, high: Bool) throws(KVMError) {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = high ? 1 : 0
        try kvmIoctl(fd, VOLT_KVM_IRQ_LINE, &level, "IRQ_LINE(\(irq))")
    }

    /// An edge on an ISA interrupt line (the legacy devices' IOAPIC pins are edge-triggered).
    /// kvmclock as KVM_GET_CLOCK reports it (ns), to put back with `setClock`.
    func clock() throws(KVMError) -> UInt64 {
        var data = kvm_clock_data()
        try kvmIoctl(fd, VOLT_KVM_GET_CLOCK, &data, "GET_CLOCK")
        return data.clock
    }

    /// KVM_SET_CLOCK: kvmclock reads `nanoseconds` from now on.
    func setClock(_ nanoseconds: UInt64) throws(KVMError) {
        var data = kvm_clock_data()
        data.clock = nanoseconds
        try kvmIoctl(fd, VOLT_KVM_SET_CLOCK, &data, "SET_CLOCK")
    }

    func pulseIRQ(_ irq: UInt32) throws(KVMError) {
        try setIRQLine(irq, high: true)
        try setIRQLine(irq, high: false)
    }

    /// Makes a guest write of `datamatch` (4 bytes) at `address` signal `eventFD` inside
    /// KVM, without a vCPU exit: a virtio QueueNotify goes straight to the device process.
    func addIoeventfd(address: UInt64, datamatch: UInt32, eventFD: Int32) throws(KVMError) {
        var e = kvm_ioeventfd()
        e.addr = address
        e.len = 4
        e.fd = eventFD
        e.datamatch = UInt64(datamatch)
        e.flags = UInt32(1 << kvm_ioeventfd_flag_nr_datamatch)
        try kvmIoctl(fd, VOLT_KVM_IOEVENTFD, &e, "IOEVENTFD(0x\(String(address, radix: 16)), \(datamatch))")
    }

    /// Makes a write to `eventFD` raise `gsi` inside KVM: a device process's completion
    /// interrupt reaches the guest without the VMM.
    func addIrqfd(gsi: UInt32, eventFD: Int32) throws(KVMError) {
        var i = kvm_irqfd()
        i.fd = UInt32(bitPattern: eventFD)
        i.gsi = gsi
        try kvmIoctl(fd, VOLT_KVM_IRQFD, &i, "IRQFD(gsi \(gsi))")
    }

    func createVCPU(index: Int) throws(KVMError) -> VCPU {
        let vcpuFD = try kvmIoctl(fd, VOLT_KVM_CREATE_VCPU, value: UInt(index), "CREATE_VCPU(\(index))")
        return try VCPU(fd: vcpuFD, index: index, mmapSize: try hypervisor.vcpuMmapSize())
    }
}
