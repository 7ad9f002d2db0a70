extension KernelImage {
    /// One line saying how volt-vmm boots this kernel (`volt-vmm kernel verify`).
    public var summary: String {
        switch format {
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
