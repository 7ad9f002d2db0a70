import Glibc

/// Copies the PT_LOAD segments of a validated vmlinux into guest RAM at their physical
/// addresses (p_paddr): p_filesz bytes from the file, then zeros up to p_memsz (.bss).
enum ELFLoader {
    /// Returns the end (exclusive) of the highest loaded segment.
    static func load(_ elf: ELFKernel, image: [UInt8], path: String,
                     into memory: GuestMemory) throws(BootLoaderError) -> UInt64 {
        var end: UInt64 = 0
        // Check every segment before writing any, so a failure leaves RAM untouched.
        for (index, segment) in elf.segments.enumerated() {
            guard segment.physicalAddress >= Layout.highMemoryStart else {
                throw .segmentOverlapsBootData(path: path, index: index, address: segment.physicalAddress)
            }
            guard memory.contains(segment.physicalAddress, length: segment.memorySize) else {
                throw .segmentOutsideRAM(path: path, index: index, address: segment.physicalAddress,
                                         size: segment.memorySize, ramSize: lowRAMSize(memory))
            }
            end = max(end, segment.physicalAddress + segment.memorySize)
        }
        for (index, segment) in elf.segments.enumerated() where segment.memorySize > 0 {
            let destination: UnsafeMutableRawPointer
            do {
                destination = try memory.pointer(at: segment.physicalAddress, length: segment.memorySize)
            } catch {
                throw .guestMemory(what: "\(path) segment \(index)", error)
            }
            // KernelImage checked fileOffset + fileSize <= image.count and fileSize <= memorySize.
            image.withUnsafeBytes { source in
                if segment.fileSize > 0, let base = source.baseAddress {
                    memcpy(destination, base + Int(segment.fileOffset), Int(segment.fileSize))
                }
            }
            memset(destination + Int(segment.fileSize), 0, Int(segment.memorySize - segment.fileSize))
        }
        return end
    }

    /// RAM a kernel can use for its image: the region below the MMIO hole.
    static func lowRAMSize(_ memory: GuestMemory) -> UInt64 {
        memory.regions.first?.size ?? 0
    }
}
