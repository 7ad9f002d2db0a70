import Testing
@testable import VMM

@Suite struct InitrdLoaderTests {
    static let magics: [([UInt8], InitrdLoader.Format)] = [
        (Array("070701".utf8) + [0x30], .cpioNewc),
        (Array("070702".utf8), .cpioCRC),
        ([0xc7, 0x71, 0, 0], .cpioBinary),
        ([0x1f, 0x8b, 0x08, 0x00], .gzip),
        ([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], .xz),
        ([0x28, 0xb5, 0x2f, 0xfd, 0x24], .zstd),
        ([0x02, 0x21, 0x4c, 0x18, 0xff], .lz4),
        (Array("BZh9".utf8), .bzip2),
        ([0x5d, 0x00, 0x00, 0x80, 0x00], .lzma),
    ]

    @Test(arguments: magics.indices)
    func recognisesFormat(index: Int) {
        let (bytes, format) = Self.magics[index]
        #expect(InitrdLoader.format(of: bytes) == format)
    }

    @Test func rejectsOtherBytes() {
        #expect(InitrdLoader.format(of: []) == nil)
        #expect(InitrdLoader.format(of: Array("07070".utf8)) == nil)        // truncated cpio magic
        #expect(InitrdLoader.format(of: Array("070703".utf8)) == nil)
        #expect(InitrdLoader.format(of: [0x7f, 0x45, 0x4c, 0x46]) == nil)   // an ELF is not an initrd
        #expect(InitrdLoader.format(of: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x01]) == nil)
        #expect(BootLoaderError.initrdNotRecognized(path: "/x.img").description
                == "/x.img is not an initrd (expected a cpio archive, optionally gzip/xz/zstd/lz4/bzip2/lzma compressed)")
    }

    @Test func placesAtTopOfLowRAMPageAligned() {
        let regions = GuestMemory.layout(size: 256 << 20)
        let address = InitrdLoader.placement(size: 0x1234, lowest: 0x200_0000, limit: Layout.mmioHoleStart, regions: regions)
        #expect(address == (256 << 20) - 0x2000)
    }

    @Test func respectsInitrdAddrMax() {
        let regions = GuestMemory.layout(size: 3 << 30)
        let address = InitrdLoader.placement(size: 0x10_0000, lowest: 0x200_0000, limit: 0x3800_0000, regions: regions)
        #expect(address == 0x3800_0000 - 0x10_0000)
    }

    @Test func staysBelowTheMMIOHoleInLargeGuests() {
        let regions = GuestMemory.layout(size: 8 << 30)
        let address = InitrdLoader.placement(size: 0x1000, lowest: 0x200_0000, limit: UInt64.max, regions: regions)
        #expect(address == Layout.mmioHoleStart - 0x1000)
    }

    @Test func doesNotFitAboveTheKernel() {
        let regions = GuestMemory.layout(size: 32 << 20)
        // 16 MiB of initrd between a kernel ending at 20 MiB and the end of RAM at 32 MiB.
        #expect(InitrdLoader.placement(size: 16 << 20, lowest: 20 << 20, limit: .max, regions: regions) == nil)
        // Exactly fits: kernel end page-aligned up to 20 MiB + 4 KiB.
        #expect(InitrdLoader.placement(size: (12 << 20) - 0x1000, lowest: (20 << 20) + 1, limit: .max, regions: regions)
                == (20 << 20) + 0x1000)
        #expect(InitrdLoader.placement(size: (12 << 20), lowest: (20 << 20) + 1, limit: .max, regions: regions) == nil)
        #expect(InitrdLoader.placement(size: .max, lowest: 0, limit: .max, regions: regions) == nil)
    }

    @Test func loadCopiesFileIntoGuestRAM() throws {
        let dir = try TemporaryDirectory()
        let content = cpioNewc + [UInt8](repeating: 0x42, count: 5000)
        let file = try HostFile.open(try dir.file("initrd.cpio", content), role: "initrd")
        defer { file.close() }
        let memory = try GuestMemory(size: 32 << 20)
        let placed = try InitrdLoader.load(file, lowest: 0x100_0000, limit: .max, into: memory)
        #expect(placed.size == UInt64(content.count))
        #expect(placed.address == (32 << 20) - 0x2000)
        #expect(placed.address % 0x1000 == 0)
        #expect(try memory.read(at: placed.address, count: content.count) == content)
    }

    @Test func loadRejectsNonInitrdAndOversize() throws {
        let dir = try TemporaryDirectory()
        let memory = try GuestMemory(size: 16 << 20)
        let text = try HostFile.open(try dir.file("notes.txt", Array("hello".utf8)), role: "initrd")
        defer { text.close() }
        #expect(throws: BootLoaderError.initrdNotRecognized(path: text.path)) {
            try InitrdLoader.load(text, lowest: 0x100_0000, limit: .max, into: memory)
        }
        let big = try HostFile.open(try dir.file("big.gz", [0x1f, 0x8b] + [UInt8](repeating: 0, count: 8 << 20)), role: "initrd")
        defer { big.close() }
        let error = #expect(throws: BootLoaderError.self) {
            try InitrdLoader.load(big, lowest: 12 << 20, limit: .max, into: memory)
        }
        guard case .initrdDoesNotFit? = error else { Issue.record("expected initrdDoesNotFit, got \(String(describing: error))"); return }
        #expect(error?.description.contains("--memory") == true)
    }
}
