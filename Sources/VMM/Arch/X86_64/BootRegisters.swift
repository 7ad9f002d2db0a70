import CShim
import VirtioCore

enum BootRegistersError: Error, Equatable, CustomStringConvertible {
    case gdt(GDTError)
    case pageTables(PageTablesError)
    case idt(MemoryMapError)

    var description: String {
        switch self {
        case let .gdt(error): return "\(error)"
        case let .pageTables(error): return "\(error)"
        case let .idt(error): return "cannot write boot IDT: \(error)"
        }
    }
}

/// Initial state of the boot vCPU (index 0) for each entry protocol.
///
/// Only the boot vCPU is configured here. Secondary vCPUs keep KVM's reset state (real
/// mode, "wait for SIPI" with the in-kernel LAPIC): the guest's BSP wakes them with
/// INIT/SIPI/SIPI and the in-kernel LAPIC handles that, so the VMM sets no registers on them
/// (they still need CPUID, MSRs, FPU and LAPIC LINT setup).
enum BootRegisters {
    // Control register and EFER bits (SDM vol. 3A 2.5, 2.2.1).
    static let cr0PE: UInt64 = 1 << 0
    static let cr0ET: UInt64 = 1 << 4
    static let cr0PG: UInt64 = 1 << 31
    static let cr4PAE: UInt64 = 1 << 5
    static let eferLME: UInt64 = 1 << 8
    static let eferLMA: UInt64 = 1 << 10
    /// Bit 1 of RFLAGS is reserved and always 1; IF stays clear (both protocols ask for it).
    static let initialRFLAGS: UInt64 = 0x2

    /// Registers for the boot vCPU. Writes the GDT and boot IDT (and, for `.linux64`, the
    /// identity page tables) into `memory`. `base` is the vCPU's KVM_GET_SREGS result: fields
    /// not named here (APIC base, LDT, CR8, interrupt bitmap) keep KVM's values; passing a
    /// zeroed struct would, for one, disable the local APIC through apic_base.
    static func configure(for entry: BootEntry, memory: GuestMemory, base: kvm_sregs) throws(BootRegistersError) -> (regs: kvm_regs, sregs: kvm_sregs) {
        let mode: GDT.Mode
        switch entry {
        case .pvh: mode = .protected32
        case .linux64: mode = .long64
        }

        var sregs = base
        let gdtLimit: UInt16
        do { gdtLimit = try GDT.write(mode, to: memory) } catch { throw .gdt(error) }
        sregs.gdt.base = Layout.gdtAddress
        sregs.gdt.limit = gdtLimit
        // An IDT of one empty (not present) gate: any exception before the guest loads its
        // own IDT becomes a triple fault, i.e. a visible shutdown exit, not a jump into junk.
        do { try memory.writeValue(UInt64(0), at: Layout.idtAddress) } catch { throw .idt(error) }
        sregs.idt.base = Layout.idtAddress
        sregs.idt.limit = 7

        let (code, data, tss) = GDT.segments(for: mode)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = tss

        var regs = kvm_regs()
        regs.rflags = initialRFLAGS
        switch entry {
        case let .pvh(entryPoint, startInfo):
            // PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h, "Boot ABI"):
            // 32-bit protected mode, paging off, flat CS/DS/ES/SS, TR a 32-bit TSS,
            // EBX = hvm_start_info address, CR4 = 0.
            sregs.cr0 = cr0PE | cr0ET
            sregs.cr3 = 0
            sregs.cr4 = 0
            sregs.efer = 0
            regs.rip = entryPoint
            regs.rbx = startInfo
        case let .linux64(entryPoint, zeroPage):
            // Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst): long mode with
            // identity paging, RSI = boot_params, interrupts off.
            do { try PageTables.write(to: memory) } catch { throw .pageTables(error) }
            sregs.cr3 = Layout.pml4Address
            sregs.cr4 = cr4PAE
            sregs.cr0 = cr0PE | cr0ET | cr0PG
            sregs.efer = eferLME | eferLMA
            regs.rip = entryPoint
            regs.rsi = zeroPage
            regs.rsp = Layout.bootStackPointer
            regs.rbp = Layout.bootStackPointer
        }
        return (regs, sregs)
    }

    /// x87/SSE state after FNINIT and with the default MXCSR (SDM vol. 1 8.1.5, 10.2.3.1):
    /// all exceptions masked, round to nearest. Current KVM resets to the same values;
    /// setting them explicitly keeps the starting point independent of the KVM version.
    static func fpu() -> kvm_fpu {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37f
        fpu.mxcsr = 0x1f80
        return fpu
    }

    // MSR indices (SDM vol. 4, chapter 2).
    static let msrSysenterCS: UInt32 = 0x174
    static let msrSysenterESP: UInt32 = 0x175
    static let msrSysenterEIP: UInt32 = 0x176
    static let msrMiscEnable: UInt32 = 0x1a0
    static let msrMTRRDefType: UInt32 = 0x2ff
    static let msrSTAR: UInt32 = 0xc000_0081
    static let msrLSTAR: UInt32 = 0xc000_0082
    static let msrCSTAR: UInt32 = 0xc000_0083
    static let msrSyscallMask: UInt32 = 0xc000_0084
    static let msrKernelGSBase: UInt32 = 0xc000_0102

    static let miscEnableFastStrings: UInt64 = 1 << 0
    /// MTRRdefType: E (bit 11) enables MTRRs; default type 6 = write-back, so all RAM is
    /// cacheable with no variable ranges (the guest may program its own later).
    static let mtrrDefTypeWriteBackEnabled: UInt64 = 1 << 11 | 6

    /// MSRs set on every vCPU before it first runs (KVM_SET_MSRS).
    /// - The syscall/sysenter MSRs are zeroed so no host or stale value is visible; KVM
    ///   already resets most of them, so this mainly documents the starting point.
    /// - IA32_TSC is deliberately left out: KVM starts each vCPU's TSC at 0 and keeps the
    ///   vCPUs of one VM in sync; a late userspace write of 0 per vCPU could only add skew.
    /// - MISC_ENABLE fast strings: lets `rep movs/stos` use the fast path, as on real CPUs.
    /// KVM_SET_MSRS stops at the first MSR it rejects and returns how many it set; the
    /// caller must compare that with the count.
    static func bootMSRs() -> [(index: UInt32, value: UInt64)] {
        [
            (msrSysenterCS, 0),
            (msrSysenterESP, 0),
            (msrSysenterEIP, 0),
            (msrSTAR, 0),
            (msrLSTAR, 0),
            (msrCSTAR, 0),
            (msrSyscallMask, 0),
            (msrKernelGSBase, 0),
            (msrMiscEnable, miscEnableFastStrings),
            (msrMTRRDefType, mtrrDefTypeWriteBackEnabled),
        ]
    }

    // Local APIC LVT registers (SDM vol. 3A 11.5.1, figure 11-8) in the 1 KiB register page.
    static let lvtLINT0Offset = 0x350
    static let lvtLINT1Offset = 0x360
    static let deliveryModeMask: UInt32 = 0x700
    static let deliveryModeNMI: UInt32 = 0b100 << 8
    static let deliveryModeExtINT: UInt32 = 0b111 << 8

    /// LINT0 = ExtINT (the 8259 PIC, virtual wire mode) and LINT1 = NMI, matching the MP
    /// table's local interrupt entries. Only the delivery mode changes: the mask bit and
    /// the rest keep KVM's reset values (Linux reprograms both LVTs in setup_local_APIC).
    static func configureLAPIC(_ state: inout kvm_lapic_state) {
        setDeliveryMode(&state, offset: lvtLINT0Offset, mode: deliveryModeExtINT)
        setDeliveryMode(&state, offset: lvtLINT1Offset, mode: deliveryModeNMI)
    }

    /// A 32-bit APIC register from the KVM_GET_LAPIC page.
    static func lapicRegister(_ state: kvm_lapic_state, offset: Int) -> UInt32 {
        withUnsafeBytes(of: state.regs) { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private static func setDeliveryMode(_ state: inout kvm_lapic_state, offset: Int, mode: UInt32) {
        let value = (lapicRegister(state, offset: offset) & ~deliveryModeMask) | mode
        withUnsafeMutableBytes(of: &state.regs) { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self) }
    }
}
