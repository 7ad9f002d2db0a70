/// The one entry point the VMM calls to put a guest's boot payload in RAM: identifies
/// the kernel, loads it, the initrd and the command line, writes the boot information
/// (PVH start info or Linux zero page, each with the e820 map) and says how to start.
enum BootLoader {
    static func prepare(memory: GuestMemory, kernelPath: String, initrdPath: String?,
                        cmdline: String) throws -> BootEntry {
        let image = try KernelImage(contentsOf: kernelPath)
        let initrdFile = try initrdPath.map { path throws(BootLoaderError) in try HostFile.open(path, role: "initrd") }
        defer { initrdFile?.close() }
        let memoryMap = E820Entry.map(for: memory.regions)

        switch image.format {
        case let .elfPVH(elf):
            // Check the command line before copying megabytes of kernel.
            let limit = Int(Layout.cmdlineMaxSize) - 1
            try validateCommandLine(cmdline, limit: limit)
            let kernelEnd = try ELFLoader.load(elf, image: image.bytes, path: kernelPath, into: memory)
            let initrd = try initrdFile.map { file throws(BootLoaderError) in
                try InitrdLoader.load(file, lowest: kernelEnd, limit: Layout.mmioHoleStart, into: memory)
            }
            let cmdlineAddress = try writeCommandLine(cmdline, limit: limit, into: memory)
            let startInfo = try PVHStartInfo.write(into: memory, memoryMap: memoryMap,
                                                   cmdlineAddress: cmdlineAddress, initrd: initrd)
            return .pvh(entry: elf.pvhEntry, startInfo: startInfo)

        case let .bzImage(header):
            // Check the command line before copying megabytes of kernel.
            let limit = min(BzImageLoader.cmdlineLimit(header), Int(Layout.cmdlineMaxSize) - 1)
            try validateCommandLine(cmdline, limit: limit)
            let kernel = try BzImageLoader.load(header, image: image.bytes, path: kernelPath, into: memory)
            let initrd = try initrdFile.map { file throws(BootLoaderError) in
                try InitrdLoader.load(file, lowest: kernel.end, limit: BzImageLoader.initrdLimit(header), into: memory)
            }
            let cmdlineAddress = try writeCommandLine(cmdline, limit: limit, into: memory)
            let zeroPage = try BzImageLoader.writeZeroPage(header, image: image.bytes, into: memory,
                                                           cmdlineAddress: cmdlineAddress, initrd: initrd,
                                                           memoryMap: memoryMap)
            return .linux64(entry: kernel.entry, zeroPage: zeroPage)
        }
    }

    static func validateCommandLine(_ cmdline: String, limit: Int) throws(BootLoaderError) {
        let length = cmdline.utf8.count
        guard !cmdline.utf8.contains(0) else { throw .cmdlineContainsNUL }
        guard length <= limit else { throw .cmdlineTooLong(length: length, limit: limit) }
    }

    /// Writes the NUL-terminated command line at Layout.cmdlineAddress; `limit` excludes the NUL.
    static func writeCommandLine(_ cmdline: String, limit: Int, into memory: GuestMemory) throws(BootLoaderError) -> UInt64 {
        try validateCommandLine(cmdline, limit: limit)
        do {
            try memory.write(Array(cmdline.utf8) + [0], at: Layout.cmdlineAddress)
        } catch {
            throw .guestMemory(what: "the kernel command line", error)
        }
        return Layout.cmdlineAddress
    }
}
