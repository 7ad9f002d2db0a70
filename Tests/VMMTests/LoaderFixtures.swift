import Foundation
@testable import VMM

/// Builders for synthetic kernel and initrd images used by the loader tests.
/// Everything is assembled byte by byte from the ELF gABI, the Linux boot protocol and
/// the PVH ABI, so tests do not depend on a real kernel being present.

func putLE<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { raw in
        for (i, b) in raw.enumerated() { bytes[offset + i] = b }
    }
}

func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int, in bytes: [UInt8]) -> T {
    var value: T = 0
    for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
    return value
}

/// One ELF note: namesz, descsz, type, name and desc each padded to 4 bytes.
func elfNote(name: String, type: UInt32, desc: [UInt8]) -> [UInt8] {
    let nameBytes = Array(name.utf8) + [0]
    var note = [UInt8](repeating: 0, count: 12)
    putLE(UInt32(nameBytes.count), at: 0, in: &note)
    putLE(UInt32(desc.count), at: 4, in: &note)
    putLE(type, at: 8, in: &note)
    func pad(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (4 - b.count % 4) % 4) }
    return note + pad(nameBytes) + pad(desc)
}

func pvhNote(entry: UInt64, descSize: Int = 8) -> [UInt8] {
    var desc = [UInt8](repeating: 0, count: descSize)
    for i in 0..<min(descSize, 8) { desc[i] = UInt8(truncatingIfNeeded: entry >> (8 * UInt64(i))) }
    return elfNote(name: "Xen", type: 18, desc: desc)
}

struct TestELF {
    struct Segment {
        var type: UInt32
        var paddr: UInt64
        var data: [UInt8]
        var memsz: UInt64
        var align: UInt64 = 4
    }

    var is64 = true
    var segments: [Segment]

    var headerSize: Int { is64 ? 64 : 52 }
    var phentsize: Int { is64 ? 56 : 32 }
    /// File offset of program header `i`.
    func phdr(_ i: Int) -> Int { headerSize + i * phentsize }

    /// A vmlinux-like image: two PT_LOAD segments (the second with .bss) and a PVH note.
    static func vmlinux(is64: Bool = true, entry: UInt64 = 0x100_0f20, note: [UInt8]? = nil) -> TestELF {
        TestELF(is64: is64, segments: [
            Segment(type: 1, paddr: 0x100_0000, data: [UInt8](repeating: 0xaa, count: 0x3000), memsz: 0x3000),
            Segment(type: 1, paddr: 0x100_4000, data: [UInt8](repeating: 0xbb, count: 0x800), memsz: 0x2000),
            Segment(type: 4, paddr: 0, data: note ?? (elfNote(name: "GNU", type: 3, desc: [1, 2, 3, 4])
                                                          + pvhNote(entry: entry, descSize: is64 ? 8 : 4)),
                    memsz: 0),
        ])
    }

    func bytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: headerSize + segments.count * phentsize)
        out.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
        out[4] = is64 ? 2 : 1
        out[5] = 1          // little-endian
        out[6] = 1          // EV_CURRENT
        putLE(UInt16(2), at: 16, in: &out)                  // ET_EXEC
        putLE(UInt16(is64 ? 62 : 3), at: 18, in: &out)
        putLE(UInt32(1), at: 20, in: &out)
        if is64 {
            putLE(UInt64(0x100_0000), at: 24, in: &out)
            putLE(UInt64(headerSize), at: 32, in: &out)
            putLE(UInt16(headerSize), at: 52, in: &out)
            putLE(UInt16(phentsize), at: 54, in: &out)
            putLE(UInt16(segments.count), at: 56, in: &out)
        } else {
            putLE(UInt32(0x100_0000), at: 24, in: &out)
            putLE(UInt32(headerSize), at: 28, in: &out)
            putLE(UInt16(headerSize), at: 40, in: &out)
            putLE(UInt16(phentsize), at: 42, in: &out)
            putLE(UInt16(segments.count), at: 44, in: &out)
        }
        for (i, s) in segments.enumerated() {
            let offset = out.count
            out += s.data
            let ph = phdr(i)
            putLE(s.type, at: ph, in: &out)
            if is64 {
                putLE(UInt32(5), at: ph + 4, in: &out)
                putLE(UInt64(offset), at: ph + 8, in: &out)
                putLE(s.paddr | 0xffff_ffff_8000_0000, at: ph + 16, in: &out)  // vaddr, unused
                putLE(s.paddr, at: ph + 24, in: &out)
                putLE(UInt64(s.data.count), at: ph + 32, in: &out)
                putLE(s.memsz, at: ph + 40, in: &out)
                putLE(s.align, at: ph + 48, in: &out)
            } else {
                putLE(UInt32(offset), at: ph + 4, in: &out)
                putLE(UInt32(truncatingIfNeeded: s.paddr | 0xc000_0000), at: ph + 8, in: &out)
                putLE(UInt32(truncatingIfNeeded: s.paddr), at: ph + 12, in: &out)
                putLE(UInt32(s.data.count), at: ph + 16, in: &out)
                putLE(UInt32(truncatingIfNeeded: s.memsz), at: ph + 20, in: &out)
                putLE(UInt32(5), at: ph + 24, in: &out)
                putLE(UInt32(truncatingIfNeeded: s.align), at: ph + 28, in: &out)
            }
        }
        return out
    }
}

/// A bzImage with a protocol 2.15 setup header and a small fake protected-mode kernel.
struct TestBzImage {
    var version: UInt16 = 0x020f
    var setupSects: UInt8 = 3
    var loadflags: UInt8 = 0x01                 // LOADED_HIGH
    var xloadflags: UInt16 = 0x0003             // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    var initrdAddrMax: UInt32 = 0x7fff_ffff
    var cmdlineSize: UInt32 = 2047
    var prefAddress: UInt64 = 0x100_0000
    var initSize: UInt32 = 0x40_0000            // 4 MiB
    var headerEndByte: UInt8 = 0x6a             // header ends at 0x202 + 0x6a = 0x26c
    var payload: [UInt8] = [UInt8](repeating: 0xcc, count: 0x2000)

    var kernelOffset: Int { (Int(setupSects == 0 ? 4 : setupSects) + 1) * 512 }

    func bytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: kernelOffset)
        out[0x1f1] = setupSects
        putLE(UInt16(0xaa55), at: 0x1fe, in: &out)
        out[0x200] = 0xeb
        out[0x201] = headerEndByte
        out.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        putLE(version, at: 0x206, in: &out)
        putLE(UInt16(0x3a0), at: 0x20e, in: &out)    // kernel_version string offset
        out[0x211] = loadflags
        putLE(UInt32(0x10_0000), at: 0x214, in: &out) // code32_start
        putLE(initrdAddrMax, at: 0x22c, in: &out)
        putLE(UInt32(0x20_0000), at: 0x230, in: &out) // kernel_alignment
        out[0x234] = 1                                // relocatable_kernel
        out[0x235] = 21                               // min_alignment
        putLE(xloadflags, at: 0x236, in: &out)
        putLE(cmdlineSize, at: 0x238, in: &out)
        putLE(prefAddress, at: 0x258, in: &out)
        putLE(initSize, at: 0x260, in: &out)
        return out + payload
    }
}

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("volt-loader-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = url.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// A minimal newc cpio archive header (one "TRAILER!!!" entry is enough for the magic check).
let cpioNewc: [UInt8] = Array("070701".utf8) + [UInt8](repeating: 0x30, count: 104) + Array("TRAILER!!!\0".utf8)
