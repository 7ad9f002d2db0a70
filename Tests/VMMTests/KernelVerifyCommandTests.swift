import Testing
@testable import VMM
@testable import VMMMain

@Suite struct KernelVerifyCommandTests {
    @Test func describesELF() throws {
        let image = try KernelImage(bytes: TestELF.vmlinux(entry: 0x100_0f20).bytes(), path: "vmlinux")
        #expect(image.summary == "ELF64 vmlinux, PVH entry 0x1000f20, 2 loadable segments, 20 KiB")
        let elf32 = try KernelImage(bytes: TestELF.vmlinux(is64: false).bytes(), path: "vmlinux")
        #expect(elf32.summary.hasPrefix("ELF32 vmlinux"))
    }

    @Test func describesBzImage() throws {
        let image = try KernelImage(bytes: TestBzImage().bytes(), path: "bzImage")
        #expect(image.summary
                == "bzImage, boot protocol 2.15, 64-bit entry, setup 3 sectors, initrd_addr_max 0x7fffffff, cmdline_size 2047")
    }

    @Test func sizesPrintInMiB() {
        #expect(loaderSize(19_084_288) == "18.2 MiB")
        #expect(loaderSize(16 << 20) == "16.0 MiB")
        #expect(loaderSize(5000) == "4 KiB")
        #expect(loaderSize(12) == "12 bytes")
    }

    @Test func parsesFileArgument() throws {
        let command = try KernelVerifyCommand.parse(["/boot/vmlinux"])
        #expect(command.file == "/boot/vmlinux")
    }
}
