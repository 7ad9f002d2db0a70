import ArgumentParser
@preconcurrency import Glibc

/// `volt-vmm kernel verify FILE`: says whether volt-vmm can boot a kernel file and how.
struct KernelVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that a kernel file is bootable and describe it.",
        discussion: "Exit status 0 when volt-vmm can boot FILE, 1 (with the reason) when it cannot."
    )

    @Argument(help: "An ELF vmlinux with a PVH entry note, or a 64-bit bzImage.")
    var file: String

    func run() throws {
        do {
            let image = try KernelImage(bytes: try HostFile.contents(of: file, role: "kernel"), path: file)
            print(Self.summary(of: image))
        } catch {
            fputs("error: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }

    static func summary(of image: KernelImage) -> String {
        switch image.format {
        case let .elfPVH(elf):
            let count = elf.segments.count
            return "ELF\(elf.is64Bit ? "64" : "32") vmlinux, PVH entry \(loaderHex(elf.pvhEntry)), "
                + "\(count) loadable segment\(count == 1 ? "" : "s"), \(loaderSize(elf.loadedBytes))"
        case let .bzImage(header):
            return "bzImage, boot protocol \(SetupHeader.versionString(header.version)), 64-bit entry, "
                + "setup \(header.setupSectors) sectors, initrd_addr_max \(loaderHex(header.initrdAddrMax)), "
                + "cmdline_size \(header.cmdlineSize)"
        }
    }
}
