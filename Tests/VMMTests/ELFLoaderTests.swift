import Testing
@testable import VMM

@Suite struct ELFLoaderTests {
    func elf(_ test: TestELF) throws -> ELFKernel {
        let image = try KernelImage(bytes: test.bytes(), path: "vmlinux")
        guard case let .elfPVH(elf) = image.format else { throw KernelImageError.notAKernel(path: "vmlinux") }
        return elf
    }

    @Test func copiesFileBytesAndZeroesBss() throws {
        let memory = try GuestMemory(size: 32 << 20)
        // Dirty the .bss range first: the loader must zero it, not rely on fresh memory.
        try memory.write([UInt8](repeating: 0x55, count: 0x2000), at: 0x100_4000)
        let test = TestELF.vmlinux()
        let end = try ELFLoader.load(try elf(test), image: test.bytes(), path: "vmlinux", into: memory)
        #expect(end == 0x100_6000)
        #expect(try memory.read(at: 0x100_0000, count: 0x3000) == [UInt8](repeating: 0xaa, count: 0x3000))
        #expect(try memory.read(at: 0x100_4000, count: 0x800) == [UInt8](repeating: 0xbb, count: 0x800))
        #expect(try memory.read(at: 0x100_4800, count: 0x1800) == [UInt8](repeating: 0, count: 0x1800))
    }

    @Test func loadsELF32AtPhysicalAddresses() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let test = TestELF.vmlinux(is64: false)
        #expect(try ELFLoader.load(try elf(test), image: test.bytes(), path: "vmlinux", into: memory) == 0x100_6000)
        #expect(try memory.read(at: 0x100_0000, count: 1) == [0xaa])
    }

    @Test func segmentBeyondRAMNamesSegmentAndSize() throws {
        let memory = try GuestMemory(size: 32 << 20)
        var test = TestELF.vmlinux()
        test.segments[1].paddr = 0x1ff_f000         // ends at 32 MiB + 0x1000
        let error = #expect(throws: BootLoaderError.self) {
            try ELFLoader.load(try elf(test), image: test.bytes(), path: "vmlinux", into: memory)
        }
        #expect(error == .segmentOutsideRAM(path: "vmlinux", index: 1, address: 0x1ff_f000, size: 0x2000, ramSize: 32 << 20))
        #expect(error?.description.contains("--memory") == true)
        #expect(error?.description.contains("32.0 MiB") == true)
        // Nothing was written: the first segment is checked along with the rest before any copy.
        #expect(try memory.read(at: 0x100_0000, count: 1) == [0])
    }

    @Test func segmentBelowOneMiBIsRejected() throws {
        let memory = try GuestMemory(size: 32 << 20)
        var test = TestELF.vmlinux()
        test.segments[0].paddr = 0x7000              // would overwrite the zero page
        #expect(throws: BootLoaderError.segmentOverlapsBootData(path: "vmlinux", index: 0, address: 0x7000)) {
            try ELFLoader.load(try elf(test), image: test.bytes(), path: "vmlinux", into: memory)
        }
    }

    @Test func segmentInTheMMIOHoleIsRejected() throws {
        let memory = try GuestMemory(size: 4 << 30)
        var test = TestELF.vmlinux()
        test.segments[0].paddr = Layout.mmioHoleStart - 0x1000    // straddles into the hole
        #expect(throws: BootLoaderError.self) {
            try ELFLoader.load(try elf(test), image: test.bytes(), path: "vmlinux", into: memory)
        }
    }
}
