import CShim
import Testing
@testable import VMM

/// A stand-in for KVM_GET_SREGS output: fields BootRegisters must leave alone get
/// recognizable values.
private func baseSregs() -> kvm_sregs {
    var sregs = kvm_sregs()
    sregs.apic_base = 0xfee0_0900
    sregs.cr8 = 0
    sregs.ldt.selector = 0x77
    sregs.ldt.type = 2
    sregs.cr0 = 0x6000_0010   // CD | NW | ET, KVM's reset value
    return sregs
}

@Suite struct BootRegistersTests {
    @Test func pvhIs32BitProtectedModeWithoutPaging() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let (regs, sregs) = try BootRegisters.configure(for: .pvh(entry: 0x100_0000, startInfo: 0x6000), memory: memory, base: baseSregs())
        #expect(regs.rip == 0x100_0000 && regs.rbx == 0x6000 && regs.rflags == 0x2)
        #expect(regs.rsi == 0 && regs.rsp == 0)
        #expect(sregs.cr0 == 0x11 && sregs.cr3 == 0 && sregs.cr4 == 0 && sregs.efer == 0)
        #expect(sregs.cs.selector == 0x08 && sregs.cs.db == 1 && sregs.cs.l == 0 && sregs.cs.type == 0xb)
        #expect(sregs.cs.base == 0 && sregs.cs.limit == 0xffff_ffff)
        for segment in [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss] {
            #expect(segment.selector == 0x10 && segment.type == 0x3 && segment.limit == 0xffff_ffff && segment.present == 1)
        }
        #expect(sregs.tr.selector == 0x18 && sregs.tr.type == 0xb && sregs.tr.s == 0 && sregs.tr.present == 1)
        #expect(sregs.gdt.base == 0x500 && sregs.gdt.limit == 31)
        #expect(sregs.idt.base == 0x520 && sregs.idt.limit == 7)
        // KVM-owned fields untouched.
        #expect(sregs.apic_base == 0xfee0_0900 && sregs.ldt.selector == 0x77)
        // The GDT in memory holds the 32-bit code descriptor; no page tables were written.
        #expect(try memory.readValue(UInt64.self, at: 0x508) == 0x00cf_9b00_0000_ffff)
        #expect(try memory.readValue(UInt64.self, at: Layout.pml4Address) == 0)
    }

    @Test func linux64IsLongModeWithIdentityPaging() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let (regs, sregs) = try BootRegisters.configure(for: .linux64(entry: 0x100_0200, zeroPage: 0x7000), memory: memory, base: baseSregs())
        #expect(regs.rip == 0x100_0200 && regs.rsi == 0x7000 && regs.rflags == 0x2)
        #expect(regs.rsp == Layout.bootStackPointer && regs.rbp == Layout.bootStackPointer && regs.rbx == 0)
        #expect(sregs.cr0 == 0x8000_0011 && sregs.cr3 == 0x9000 && sregs.cr4 == 0x20 && sregs.efer == 0x500)
        #expect(sregs.cs.selector == 0x08 && sregs.cs.l == 1 && sregs.cs.db == 0 && sregs.cs.type == 0xb)
        #expect(sregs.ss.selector == 0x10 && sregs.ds.selector == 0x10)
        #expect(sregs.tr.type == 0xb && sregs.tr.present == 1)
        #expect(sregs.gdt.base == 0x500 && sregs.apic_base == 0xfee0_0900)
        #expect(try memory.readValue(UInt64.self, at: 0x508) == 0x00af_9b00_0000_ffff)
        #expect(try memory.readValue(UInt64.self, at: Layout.pml4Address) == 0xa003)
        #expect(try memory.readValue(UInt64.self, at: Layout.pdAddress + 8) == 0x20_0083)
    }

    @Test func fpuDefaults() {
        let fpu = BootRegisters.fpu()
        #expect(fpu.fcw == 0x37f && fpu.mxcsr == 0x1f80 && fpu.fsw == 0)
    }

    @Test func bootMSRs() {
        let msrs = BootRegisters.bootMSRs()
        #expect(Set(msrs.map(\.index)).count == msrs.count)
        let values = Dictionary(uniqueKeysWithValues: msrs.map { ($0.index, $0.value) })
        #expect(values[0x1a0] == 1)
        #expect(values[0x2ff] == 0x806)
        for zeroed: UInt32 in [0x174, 0x175, 0x176, 0xc000_0081, 0xc000_0082, 0xc000_0083, 0xc000_0084, 0xc000_0102] {
            #expect(values[zeroed] == 0)
        }
        #expect(values[0x10] == nil)   // IA32_TSC left to KVM
    }

    @Test func lapicLINTDeliveryModes() {
        var state = kvm_lapic_state()
        // Reset-like values: masked (bit 16), plus a stray delivery mode to be replaced.
        withUnsafeMutableBytes(of: &state.regs) {
            $0.storeBytes(of: UInt32(0x1_0200), toByteOffset: 0x350, as: UInt32.self)
            $0.storeBytes(of: UInt32(0x1_0000), toByteOffset: 0x360, as: UInt32.self)
            $0.storeBytes(of: UInt32(0xdead_beef), toByteOffset: 0x340, as: UInt32.self)
        }
        BootRegisters.configureLAPIC(&state)
        #expect(BootRegisters.lapicRegister(state, offset: 0x350) == 0x1_0700)   // ExtINT, mask kept
        #expect(BootRegisters.lapicRegister(state, offset: 0x360) == 0x1_0400)   // NMI, mask kept
        #expect(BootRegisters.lapicRegister(state, offset: 0x340) == 0xdead_beef) // neighbours untouched
    }
}
