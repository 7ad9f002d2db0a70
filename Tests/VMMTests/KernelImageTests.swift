import Testing
@testable import VMM

@Suite struct KernelImageTests {
    let path = "test-vmlinux"

    func identify(_ bytes: [UInt8]) throws -> KernelImage { try KernelImage(bytes: bytes, path: path) }

    // MARK: ELF

    @Test(arguments: [true, false])
    func elfWithPVHNoteIsPVH(is64: Bool) throws {
        let image = try identify(TestELF.vmlinux(is64: is64, entry: 0x100_0f20).bytes())
        #expect(image.kind == .elfPVH(entry: 0x100_0f20))
        guard case let .elfPVH(elf) = image.format else { Issue.record("not ELF"); return }
        #expect(elf.is64Bit == is64)
        #expect(elf.segments.map(\.physicalAddress) == [0x100_0000, 0x100_4000])
        #expect(elf.segments.map(\.memorySize) == [0x3000, 0x2000])
        #expect(elf.segments.map(\.fileSize) == [0x3000, 0x800])
        #expect(elf.loadedBytes == 0x5000)
    }

    @Test func noteWithFourByteDescriptorIn64BitELF() throws {
        let image = try identify(TestELF.vmlinux(note: pvhNote(entry: 0x200_0000, descSize: 4)).bytes())
        #expect(image.kind == .elfPVH(entry: 0x200_0000))
    }

    @Test func notesInEightByteAlignedSegment() throws {
        // With p_align 8, name and desc are padded to 8: "Xen\0" (4) gets 4 bytes of padding.
        var desc = [UInt8](repeating: 0, count: 8)
        putLE(UInt64(0x123_4560), at: 0, in: &desc)
        var note = [UInt8](repeating: 0, count: 12)
        putLE(UInt32(4), at: 0, in: &note); putLE(UInt32(8), at: 4, in: &note); putLE(UInt32(18), at: 8, in: &note)
        note += Array("Xen\0".utf8) + [0, 0, 0, 0] + desc
        var elf = TestELF.vmlinux(note: note)
        elf.segments[2].align = 8
        #expect(try identify(elf.bytes()).kind == .elfPVH(entry: 0x123_4560))
    }

    @Test func elfWithoutNoteSaysBuildWithPVH() {
        let elf = TestELF.vmlinux(note: elfNote(name: "GNU", type: 3, desc: [0, 0, 0, 0]))
        #expect(throws: KernelImageError.elfNoPVHNote(path: path)) { try identify(elf.bytes()) }
        let message = KernelImageError.elfNoPVHNote(path: path).description
        #expect(message.contains("XEN_ELFNOTE_PHYS32_ENTRY") && message.contains("CONFIG_PVH=y") && message.contains(path))
    }

    @Test func xenNoteOfAnotherTypeIsNotTheEntry() {
        let elf = TestELF.vmlinux(note: elfNote(name: "Xen", type: 6, desc: Array("linux\0\0\0".utf8)))
        #expect(throws: KernelImageError.elfNoPVHNote(path: path)) { try identify(elf.bytes()) }
    }

    /// Each corruption of a valid ELF64 vmlinux and the error it must produce.
    static let elfCorruptions: [(String, ([UInt8]) -> [UInt8], (String) -> KernelImageError)] = {
        let elf = TestELF.vmlinux()
        let ph0 = elf.phdr(0), ph1 = elf.phdr(1), note = elf.phdr(2)
        func patch<T: FixedWidthInteger>(_ v: T, _ at: Int) -> ([UInt8]) -> [UInt8] {
            { var b = $0; putLE(v, at: at, in: &b); return b }
        }
        return [
            ("header cut short", { Array($0.prefix(40)) }, { .elfTruncatedHeader(path: $0, size: 40) }),
            ("only the magic", { Array($0.prefix(4)) }, { .elfTruncatedHeader(path: $0, size: 4) }),
            ("bad class", patch(UInt8(3), 4), { .elfBadClass(path: $0, elfClass: 3) }),
            ("big-endian", patch(UInt8(2), 5), { .elfBigEndian(path: $0) }),
            ("ARM machine", patch(UInt16(40), 18), { .elfWrongMachine(path: $0, machine: 40) }),
            ("phentsize", patch(UInt16(50), 54), { .elfBadProgramHeaderSize(path: $0, size: 50) }),
            ("phoff past end", patch(UInt64(0x10_0000), 32),
             { .elfProgramHeadersOutsideFile(path: $0, offset: 0x10_0000, count: 3) }),
            ("phoff overflows", patch(UInt64.max - 8, 32),
             { .elfProgramHeadersOutsideFile(path: $0, offset: UInt64.max - 8, count: 3) }),
            ("phnum too large", patch(UInt16(0xffff), 56),
             { .elfProgramHeadersOutsideFile(path: $0, offset: 64, count: 0xffff) }),
            ("segment offset past end", patch(UInt64(0x1000_0000), ph0 + 8), { .elfSegmentOutsideFile(path: $0, index: 0) }),
            ("segment offset overflows", patch(UInt64.max, ph1 + 8), { .elfSegmentOutsideFile(path: $0, index: 1) }),
            ("filesz past end", { b in var b = b; putLE(UInt64(0x10_0000), at: ph0 + 32, in: &b)
                                   putLE(UInt64(0x10_0000), at: ph0 + 40, in: &b); return b },
             { .elfSegmentOutsideFile(path: $0, index: 0) }),
            ("filesz > memsz", patch(UInt64(0x10), ph1 + 40),
             { .elfSegmentFileSizeExceedsMemorySize(path: $0, index: 1, fileSize: 0x800, memorySize: 0x10) }),
            ("paddr + memsz overflows", patch(UInt64.max - 0x100, ph0 + 24), { .elfSegmentAddressOverflow(path: $0, index: 0) }),
            ("note segment past end", patch(UInt64(0xffff_0000), note + 32), { .elfSegmentOutsideFile(path: $0, index: 2) }),
            ("note namesz past end", { b in var b = b; let at = Int(readLE(UInt64.self, at: note + 8, in: b))
                                        putLE(UInt32.max, at: at, in: &b); return b },
             { .elfNoteTruncated(path: $0, index: 2) }),
            ("note descsz past end", { b in var b = b; let at = Int(readLE(UInt64.self, at: note + 8, in: b))
                                        putLE(UInt32(0x1000), at: at + 4, in: &b); return b },
             { .elfNoteTruncated(path: $0, index: 2) }),
            ("no PT_LOAD", { b in var b = b; putLE(UInt32(6), at: ph0, in: &b); putLE(UInt32(6), at: ph1, in: &b); return b },
             { .elfNoLoadableSegments(path: $0) }),
        ]
    }()

    @Test(arguments: elfCorruptions.indices)
    func corruptELFIsAClearError(case index: Int) {
        let (name, corrupt, expected) = Self.elfCorruptions[index]
        let bytes = corrupt(TestELF.vmlinux().bytes())
        #expect(throws: expected(path), "\(name)") { try identify(bytes) }
    }

    @Test func everyPrefixOfAnELFFailsCleanly() {
        // Truncation anywhere must give an error, never a trap or out-of-bounds read.
        let bytes = TestELF.vmlinux().bytes()
        for length in 0..<bytes.count {
            #expect(throws: KernelImageError.self) { try identify(Array(bytes.prefix(length))) }
        }
    }

    @Test func badPVHDescriptors() {
        let wrongSize = TestELF.vmlinux(note: elfNote(name: "Xen", type: 18, desc: [1, 2])).bytes()
        #expect(throws: KernelImageError.elfBadPVHNote(path: path, why: "descriptor of 2 bytes, expected 4 or 8")) {
            try identify(wrongSize)
        }
        let above4G = TestELF.vmlinux(note: pvhNote(entry: 0x1_0000_0000)).bytes()
        #expect(throws: KernelImageError.self) { try identify(above4G) }
        let zero = TestELF.vmlinux(note: pvhNote(entry: 0)).bytes()
        #expect(throws: KernelImageError.self) { try identify(zero) }
    }

    @Test func wrongMachineForClass() {
        var bytes = TestELF.vmlinux(is64: false).bytes()
        putLE(UInt16(62), at: 18, in: &bytes)   // x32 is not an i386 kernel
        #expect(throws: KernelImageError.elfWrongMachine(path: path, machine: 62)) { try identify(bytes) }
    }

    // MARK: bzImage

    @Test func validBzImage() throws {
        let image = try identify(TestBzImage().bytes())
        #expect(image.kind == .bzImage(version: 0x020f))
        guard case let .bzImage(header) = image.format else { Issue.record("not bzImage"); return }
        #expect(header.setupSectors == 3)
        #expect(header.kernelOffset == 4 * 512)
        #expect(header.initrdAddrMax == 0x7fff_ffff)
        #expect(header.cmdlineSize == 2047)
        #expect(header.prefAddress == 0x100_0000)
        #expect(header.initSize == 0x40_0000)
        #expect(header.headerEnd == 0x26c)
    }

    @Test func setupSectsZeroMeansFour() throws {
        let image = try identify(TestBzImage(setupSects: 0).bytes())
        guard case let .bzImage(header) = image.format else { Issue.record("not bzImage"); return }
        #expect(header.setupSectors == 4)
        #expect(header.kernelOffset == 5 * 512)
    }

    static let bzImageFaults: [(String, TestBzImage, (String) -> KernelImageError)] = [
        ("protocol 2.11", TestBzImage(version: 0x020b), { .bzImageProtocolTooOld(path: $0, version: 0x020b) }),
        ("protocol 2.02", TestBzImage(version: 0x0202), { .bzImageProtocolTooOld(path: $0, version: 0x0202) }),
        ("no XLF_KERNEL_64", TestBzImage(xloadflags: 0x0002), { .bzImageNo64BitEntry(path: $0) }),
        ("zImage", TestBzImage(loadflags: 0), { .bzImageNotLoadedHigh(path: $0) }),
        ("header shorter than 2.12 fields", TestBzImage(headerEndByte: 0x30),
         { .bzImageTruncatedHeader(path: $0, size: UInt64(TestBzImage().kernelOffset + 0x2000)) }),
        ("no protected-mode kernel", TestBzImage(payload: []), { .bzImageNoProtectedModeKernel(path: $0, offset: 2048) }),
    ]

    @Test(arguments: bzImageFaults.indices)
    func unusableBzImage(case index: Int) {
        let (name, image, expected) = Self.bzImageFaults[index]
        #expect(throws: expected(path), "\(name)") { try identify(image.bytes()) }
    }

    @Test func truncatedBzImage() {
        let bytes = TestBzImage().bytes()
        #expect(throws: KernelImageError.bzImageTruncatedHeader(path: path, size: 0x210)) {
            try identify(Array(bytes.prefix(0x210)))
        }
        #expect(throws: KernelImageError.bzImageTruncatedHeader(path: path, size: 0x207)) {
            try identify(Array(bytes.prefix(0x207)))
        }
        for length in 0..<(TestBzImage().kernelOffset + 1) {
            #expect(throws: KernelImageError.self) { try identify(Array(bytes.prefix(length))) }
        }
    }

    @Test func badMagicIsNotAKernel() {
        var bytes = TestBzImage().bytes()
        bytes[0x1fe] = 0
        #expect(throws: KernelImageError.notAKernel(path: path)) { try identify(bytes) }
        var noHdrS = TestBzImage().bytes()
        noHdrS[0x202] = 0x41
        #expect(throws: KernelImageError.notAKernel(path: path)) { try identify(noHdrS) }
        #expect(throws: KernelImageError.notAKernel(path: path)) { try identify([]) }
        #expect(throws: KernelImageError.notAKernel(path: path)) { try identify(Array("#!/bin/sh\n".utf8)) }
        #expect(KernelImageError.notAKernel(path: path).description
                == "test-vmlinux is not a Linux kernel (neither an ELF vmlinux nor a bzImage)")
    }

    @Test func protocolVersionsPrintLikeTheSpec() {
        #expect(SetupHeader.versionString(0x020f) == "2.15")
        #expect(SetupHeader.versionString(0x0205) == "2.05")
        #expect(KernelImageError.bzImageProtocolTooOld(path: "k", version: 0x020b).description.contains("2.11"))
    }

    @Test func everyErrorIsOneLineNamingTheFile() {
        let errors: [KernelImageError] = Self.elfCorruptions.map { $0.2(path) } + Self.bzImageFaults.map { $0.2(path) }
            + [.notAKernel(path: path), .elfNoPVHNote(path: path), .elfBadPVHNote(path: path, why: "x")]
        for error in errors {
            #expect(error.description.contains(path), "\(error)")
            #expect(!error.description.contains("\n"), "\(error)")
        }
    }
}
