import Glibc

/// Loads a bzImage for the Linux x86 64-bit boot protocol (Documentation/arch/x86/boot.rst):
/// the protected-mode kernel is copied to 1 MiB, the zero page is built at
/// Layout.zeroPageAddress from the image's own setup header, and the vCPU starts in long
/// mode at load address + 0x200 with RSI pointing at the zero page.
enum BzImageLoader {
    /// Where the protected-mode kernel goes. The spec says bzImage kernels load at
    /// 0x100000. A relocatable kernel could go anywhere kernel_alignment-aligned, but its
    /// decompressor moves itself up to max(aligned load address, LOAD_PHYSICAL_ADDR, which
    /// pref_address reports) anyway, so 1 MiB is correct for every 64-bit bzImage and the
    /// simplest choice.
    static let loadAddress = Layout.highMemoryStart
    /// Offset of startup_64 from the start of the protected-mode kernel.
    static let entryOffset: UInt64 = 0x200
    /// heap_end_ptr: end of the setup heap (0xe000, per the spec's sample layout for
    /// protocol 2.02+) minus 0x200, relative to the real-mode code. The 64-bit entry skips
    /// the real-mode code, but the kernel still reads the field.
    static let heapEndPointer: UInt16 = 0xe000 - 0x200

    struct Loaded: Equatable {
        let entry: UInt64
        /// End of the memory the kernel will use: the larger of the copied image and its
        /// runtime footprint (max(load address, pref_address) + init_size).
        let end: UInt64
    }

    /// Copies the protected-mode kernel to `loadAddress`.
    static func load(_ header: SetupHeader, image: [UInt8], path: String,
                     into memory: GuestMemory) throws(BootLoaderError) -> Loaded {
        // KernelImage checked kernelOffset < image.count.
        let payloadSize = UInt64(image.count) - header.kernelOffset
        let runtimeStart = max(loadAddress, header.prefAddress)
        let end = max(loadAddress + payloadSize, runtimeStart + UInt64(header.initSize))
        let lowEnd = ELFLoader.lowRAMSize(memory)
        guard end <= lowEnd else { throw .kernelDoesNotFit(path: path, end: end, ramSize: lowEnd) }
        let destination: UnsafeMutableRawBufferPointer
        do {
            destination = try memory.buffer(at: loadAddress, length: payloadSize)
        } catch {
            throw .guestMemory(what: "the kernel \(path)", error)
        }
        image.withUnsafeBytes { source in
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[Int(header.kernelOffset)...]))
        }
        return Loaded(entry: loadAddress + entryOffset, end: end)
    }

    /// The longest command line (without its NUL) this kernel accepts.
    static func cmdlineLimit(_ header: SetupHeader) -> Int {
        // cmdline_size exists from protocol 2.06; before it the limit was 255.
        header.version >= 0x0206 ? Int(header.cmdlineSize) : 255
    }

    /// The highest address + 1 an initrd may reach for this kernel.
    static func initrdLimit(_ header: SetupHeader) -> UInt64 {
        // initrd_addr_max is the highest byte address the initrd may occupy.
        UInt64(header.initrdAddrMax) + 1
    }

    /// Builds struct boot_params at Layout.zeroPageAddress and returns that address.
    static func writeZeroPage(_ header: SetupHeader, image: [UInt8], into memory: GuestMemory,
                              cmdlineAddress: UInt64, initrd: (address: UInt64, size: UInt64)?,
                              memoryMap: [E820Entry]) throws(BootLoaderError) -> UInt64 {
        guard memoryMap.count <= BootParams.e820MaxEntries else {
            throw .tooManyMemoryMapEntries(count: memoryMap.count, limit: BootParams.e820MaxEntries)
        }
        let page = Layout.zeroPageAddress
        // The boot protocol: start from an all-zero page, copy the setup header in.
        var params = [UInt8](repeating: 0, count: Int(BootParams.size))
        let start = Int(BootParams.setupHeader), end = Int(header.headerEnd)
        params.replaceSubrange(start..<end, with: image[start..<end])

        func put<T: FixedWidthInteger>(_ value: T, at offset: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { bytes in
                params.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
            }
        }
        put(BootParams.normalVideoMode, at: BootParams.vidMode)
        put(BootParams.undefinedLoader, at: BootParams.typeOfLoader)
        put(header.loadflags | BootParams.loadedHigh | BootParams.canUseHeap, at: BootParams.loadflags)
        put(heapEndPointer, at: BootParams.heapEndPtr)
        put(UInt32(truncatingIfNeeded: cmdlineAddress), at: BootParams.cmdLinePtr)
        put(UInt32(truncatingIfNeeded: cmdlineAddress >> 32), at: BootParams.extCmdLinePtr)
        if let initrd {
            put(UInt32(truncatingIfNeeded: initrd.address), at: BootParams.ramdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.address >> 32), at: BootParams.extRamdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.size), at: BootParams.ramdiskSize)
            put(UInt32(truncatingIfNeeded: initrd.size >> 32), at: BootParams.extRamdiskSize)
        }
        put(UInt8(memoryMap.count), at: BootParams.e820Entries)
        for (i, entry) in memoryMap.enumerated() {
            let at = BootParams.e820Table + UInt64(i) * BootParams.e820EntrySize
            put(entry.address, at: at)
            put(entry.size, at: at + 8)
            put(entry.kind.rawValue, at: at + 16)
        }
        do {
            try memory.write(params, at: page)
        } catch {
            throw .guestMemory(what: "the zero page", error)
        }
        return page
    }
}
