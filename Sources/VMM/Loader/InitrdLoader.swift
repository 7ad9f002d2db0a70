/// Recognises an initrd by its magic bytes and places it page-aligned as high as it fits
/// below a ceiling (the kernel decompresses and frees it early, and high placement keeps
/// it clear of the kernel's own decompression area), then copies it into guest RAM.
enum InitrdLoader {
    enum Format: String, Equatable, CaseIterable {
        case cpioNewc = "cpio (newc)"
        case cpioCRC = "cpio (crc)"
        case cpioBinary = "cpio (old binary)"
        case gzip, xz, zstd, lz4 = "lz4 (legacy)", bzip2, lzma

        /// Magic bytes at offset 0, from each format's specification.
        var magic: [UInt8] {
            switch self {
            case .cpioNewc: return Array("070701".utf8)
            case .cpioCRC: return Array("070702".utf8)
            case .cpioBinary: return [0xc7, 0x71]              // 0o070707 as a little-endian u16
            case .gzip: return [0x1f, 0x8b]
            case .xz: return [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]
            case .zstd: return [0x28, 0xb5, 0x2f, 0xfd]
            case .lz4: return [0x02, 0x21, 0x4c, 0x18]
            case .bzip2: return Array("BZh".utf8)
            case .lzma: return [0x5d, 0x00, 0x00]              // lc/lp/pb byte 0x5d, then dictionary size
            }
        }
    }

    /// Enough of the file to tell every format apart.
    static let magicLength = 6

    static func format(of prefix: [UInt8]) -> Format? {
        Format.allCases.first { UntrustedBytes(prefix).hasPrefix($0.magic) }
    }

    /// The highest page-aligned address `a` with a + size <= ceiling and a >= lowest,
    /// where ceiling = min(limit, end of the RAM region below the MMIO hole).
    static func placement(size: UInt64, lowest: UInt64, limit: UInt64,
                          regions: [GuestMemory.Region]) -> UInt64? {
        guard let low = regions.first(where: { $0.guestBase == 0 }) else { return nil }
        let ceiling = min(limit, low.guestEnd)
        guard size <= ceiling else { return nil }
        let address = (ceiling - size) & ~(pageSize - 1)
        let lowestAligned = (lowest + pageSize - 1) & ~(pageSize - 1)
        return address >= lowestAligned ? address : nil
    }

    static let pageSize: UInt64 = 0x1000

    /// Validates, places and copies the initrd; returns its guest address and size.
    /// `lowest` is the end of the kernel's footprint, `limit` the highest address + 1 the
    /// kernel can reach (initrd_addr_max + 1 for a bzImage, the MMIO hole for PVH).
    static func load(_ file: HostFile, lowest: UInt64, limit: UInt64,
                     into memory: GuestMemory) throws(BootLoaderError) -> (address: UInt64, size: UInt64) {
        guard format(of: try file.readPrefix(magicLength)) != nil else {
            throw .initrdNotRecognized(path: file.path)
        }
        guard let address = placement(size: file.size, lowest: lowest, limit: limit, regions: memory.regions) else {
            throw .initrdDoesNotFit(path: file.path, size: file.size, lowest: lowest,
                                    ceiling: min(limit, ELFLoader.lowRAMSize(memory)), ramSize: memory.size)
        }
        let destination: UnsafeMutableRawBufferPointer
        do {
            destination = try memory.buffer(at: address, length: file.size)
        } catch {
            throw .guestMemory(what: "initrd \(file.path)", error)
        }
        try file.read(into: destination, at: 0)
        return (address, file.size)
    }
}
