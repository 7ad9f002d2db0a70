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
            let destination: UnsafeMutableRawBufferPointer
            do {
                destination = try memory.buffer(at: segment.physicalAddress, length: segment.memorySize)
            } catch {
                throw .guestMemory(what: "\(path) segment \(index)", error)
            }
            // KernelImage checked fileOffset + fileSize <= image.count and fileSize <= memorySize.
            let fileOffset = Int(segment.fileOffset), fileSize = Int(segment.fileSize)
            image.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: destination[..<fileSize])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[fileOffset ..< fileOffset + fileSize]))
            }
            let bss = UnsafeMutableRawBufferPointer(rebasing: destination[fileSize...])
            if let start = bss.baseAddress { memset(start, 0, bss.count) }
        }
        return end
    }

    /// RAM a kernel can use for its image: the region below the MMIO hole.
    static func lowRAMSize(_ memory: GuestMemory) -> UInt64 {
        memory.regions.first?.size ?? 0
    }
}
