import Testing
@testable import VMM

@Suite struct BzImageLoaderTests {
    @Test func offsetsMatchBootparamH() {
        // arch/x86/include/uapi/asm/bootparam.h (struct boot_params / struct setup_header).
        #expect(BootParams.extRamdiskImage == 0x0c0)
        #expect(BootParams.extRamdiskSize == 0x0c4)
        #expect(BootParams.extCmdLinePtr == 0x0c8)
        #expect(BootParams.e820Entries == 0x1e8)
        #expect(BootParams.setupSects == 0x1f1)
        #expect(BootParams.vidMode == 0x1fa)
        #expect(BootParams.bootFlag == 0x1fe)
        #expect(BootParams.jump == 0x200)
        #expect(BootParams.header == 0x202)
        #expect(BootParams.version == 0x206)
        #expect(BootParams.typeOfLoader == 0x210)
        #expect(BootParams.loadflags == 0x211)
        #expect(BootParams.code32Start == 0x214)
        #expect(BootParams.ramdiskImage == 0x218)
        #expect(BootParams.ramdiskSize == 0x21c)
        #expect(BootParams.heapEndPtr == 0x224)
        #expect(BootParams.cmdLinePtr == 0x228)
        #expect(BootParams.initrdAddrMax == 0x22c)
        #expect(BootParams.kernelAlignment == 0x230)
        #expect(BootParams.relocatableKernel == 0x234)
        #expect(BootParams.xloadflags == 0x236)
        #expect(BootParams.cmdlineSize == 0x238)
        #expect(BootParams.prefAddress == 0x258)
        #expect(BootParams.initSize == 0x260)
        #expect(BootParams.e820Table == 0x2d0)
        #expect(BootParams.e820Table + UInt64(BootParams.e820MaxEntries) * BootParams.e820EntrySize == 0xcd0)
    }

    func header(_ test: TestBzImage) throws -> SetupHeader {
        let image = try KernelImage(bytes: test.bytes(), path: "bzImage")
        guard case let .bzImage(header) = image.format else { throw KernelImageError.notAKernel(path: "bzImage") }
        return header
    }

    @Test func loadsProtectedModeKernelAtOneMiB() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let test = TestBzImage()
        let loaded = try BzImageLoader.load(try header(test), image: test.bytes(), path: "bzImage", into: memory)
        #expect(loaded.entry == 0x100_200)
        // Footprint: pref_address (16 MiB) + init_size (4 MiB), more than the 8 KiB image.
        #expect(loaded.end == 0x140_0000)
        #expect(try memory.read(at: 0x10_0000, count: test.payload.count) == test.payload)
        #expect(try memory.read(at: 0x10_0000 + UInt64(test.payload.count), count: 1) == [0])
    }

    @Test func kernelFootprintMustFitInRAM() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let test = TestBzImage()
        let error = #expect(throws: BootLoaderError.self) {
            try BzImageLoader.load(try header(test), image: test.bytes(), path: "bzImage", into: memory)
        }
        #expect(error == .kernelDoesNotFit(path: "bzImage", end: 0x140_0000, ramSize: 16 << 20))
        #expect(error?.description.contains("--memory") == true)
    }

    @Test func zeroPageFields() throws {
        let memory = try GuestMemory(size: 64 << 20)
        // Leftovers in the page must not survive: the boot protocol wants a zeroed page.
        try memory.write([UInt8](repeating: 0x99, count: 0x1000), at: Layout.zeroPageAddress)
        let test = TestBzImage()
        let image = test.bytes()
        let map = E820Entry.map(for: memory.regions)
        let page = try BzImageLoader.writeZeroPage(try header(test), image: image, into: memory,
                                                   cmdlineAddress: Layout.cmdlineAddress,
                                                   initrd: (address: 0x3f0_0000, size: 0x8_1234), memoryMap: map)
        #expect(page == Layout.zeroPageAddress)
        let zp = try memory.read(at: page, count: 0x1000)
        // Setup header copied from the image: 0x1f1 up to 0x202 + byte[0x201].
        #expect(zp[0x1f1] == 3)
        #expect(readLE(UInt16.self, at: 0x1fe, in: zp) == 0xaa55)
        #expect(Array(zp[0x202..<0x206]) == Array("HdrS".utf8))
        #expect(readLE(UInt16.self, at: 0x206, in: zp) == 0x020f)
        #expect(readLE(UInt32.self, at: 0x22c, in: zp) == 0x7fff_ffff)
        #expect(readLE(UInt32.self, at: 0x238, in: zp) == 2047)
        #expect(readLE(UInt64.self, at: 0x258, in: zp) == 0x100_0000)
        // Loader-set fields.
        #expect(readLE(UInt16.self, at: 0x1fa, in: zp) == 0xffff)
        #expect(zp[0x210] == 0xff)
        #expect(zp[0x211] == 0x81)                                   // LOADED_HIGH | CAN_USE_HEAP
        #expect(readLE(UInt16.self, at: 0x224, in: zp) == 0xde00)
        #expect(readLE(UInt32.self, at: 0x228, in: zp) == UInt32(Layout.cmdlineAddress))
        #expect(readLE(UInt32.self, at: 0x0c8, in: zp) == 0)
        #expect(readLE(UInt32.self, at: 0x218, in: zp) == 0x3f0_0000)
        #expect(readLE(UInt32.self, at: 0x21c, in: zp) == 0x8_1234)
        #expect(readLE(UInt32.self, at: 0x0c0, in: zp) == 0)
        #expect(readLE(UInt32.self, at: 0x0c4, in: zp) == 0)
        // e820 table.
        #expect(Int(zp[0x1e8]) == map.count)
        for (i, entry) in map.enumerated() {
            let at = 0x2d0 + i * 20
            #expect(readLE(UInt64.self, at: at, in: zp) == entry.address)
            #expect(readLE(UInt64.self, at: at + 8, in: zp) == entry.size)
            #expect(readLE(UInt32.self, at: at + 16, in: zp) == entry.kind.rawValue)
        }
        // Everything outside the header and the fields above is zero.
        #expect(zp[0..<0xc0].allSatisfy { $0 == 0 })
        #expect(zp[0x26c..<0x2d0].allSatisfy { $0 == 0 })
        #expect(zp[(0x2d0 + map.count * 20)...].allSatisfy { $0 == 0 })
    }

    @Test func highAddressesUseExtFields() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let test = TestBzImage()
        _ = try BzImageLoader.writeZeroPage(try header(test), image: test.bytes(), into: memory,
                                            cmdlineAddress: 0x1_0002_0000,
                                            initrd: (address: 0x1_2345_6000, size: 0x1_0000_0010), memoryMap: [])
        let zp = try memory.read(at: Layout.zeroPageAddress, count: 0x1000)
        #expect(readLE(UInt32.self, at: 0x228, in: zp) == 0x0002_0000)
        #expect(readLE(UInt32.self, at: 0x0c8, in: zp) == 1)
        #expect(readLE(UInt32.self, at: 0x218, in: zp) == 0x2345_6000)
        #expect(readLE(UInt32.self, at: 0x0c0, in: zp) == 1)
        #expect(readLE(UInt32.self, at: 0x21c, in: zp) == 0x10)
        #expect(readLE(UInt32.self, at: 0x0c4, in: zp) == 1)
    }

    @Test func tooManyE820Entries() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let test = TestBzImage()
        let many = [E820Entry](repeating: E820Entry(address: 0, size: 1, kind: .ram), count: 129)
        #expect(throws: BootLoaderError.tooManyMemoryMapEntries(count: 129, limit: 128)) {
            try BzImageLoader.writeZeroPage(try header(test), image: test.bytes(), into: memory,
                                            cmdlineAddress: Layout.cmdlineAddress, initrd: nil, memoryMap: many)
        }
    }

    @Test func limitsComeFromTheHeader() throws {
        let h = try header(TestBzImage(initrdAddrMax: 0x37ff_ffff, cmdlineSize: 255))
        #expect(BzImageLoader.cmdlineLimit(h) == 255)
        #expect(BzImageLoader.initrdLimit(h) == 0x3800_0000)
    }
}
