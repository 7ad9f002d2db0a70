import SystemPackage
import Testing
import VirtioCore

/// One region of a validation case: fd filled in at run time.
struct RegionSpec: Sendable {
    var guest: UInt64, size: UInt64, user: UInt64, offset: UInt64
}

struct TableCase: Sendable, CustomStringConvertible {
    var description: String
    var regions: [RegionSpec]
    var expected: MemoryMapError
}

private let fileSize: UInt64 = 64 << 10

@Suite struct MemoryMapTests {
    static let tableCases: [TableCase] = [
        .init(description: "no regions", regions: [], expected: .noRegions),
        .init(description: "zero size", regions: [.init(guest: 0, size: 0, user: 0x10000, offset: 0)],
              expected: .zeroSize(region: 0)),
        .init(description: "guest range wraps", regions: [.init(guest: UInt64.max - 0xfff, size: 0x2000, user: 0x10000, offset: 0)],
              expected: .guestRangeWraps(region: 0)),
        .init(description: "user range wraps", regions: [.init(guest: 0, size: 0x2000, user: UInt64.max - 0xfff, offset: 0)],
              expected: .userRangeWraps(region: 0)),
        .init(description: "mmap offset wraps", regions: [.init(guest: 0, size: 0x2000, user: 0x10000, offset: UInt64.max - 1)],
              expected: .fileRangeWraps(region: 0)),
        .init(description: "exceeds fd size", regions: [.init(guest: 0, size: 0x2000, user: 0x10000, offset: fileSize - 0x1000)],
              expected: .exceedsFile(region: 0, end: fileSize + 0x1000, fileSize: fileSize)),
        .init(description: "exceeds fd size with unaligned offset", regions: [.init(guest: 0, size: fileSize, user: 0x10000, offset: 1)],
              expected: .exceedsFile(region: 0, end: fileSize + 1, fileSize: fileSize)),
        .init(description: "guest overlap", regions: [
            .init(guest: 0, size: 0x2000, user: 0x100000, offset: 0),
            .init(guest: 0x1fff, size: 0x1000, user: 0x200000, offset: 0x2000),
        ], expected: .guestOverlap(region: 1, other: 0)),
        .init(description: "guest containment", regions: [
            .init(guest: 0x1000, size: 0x1000, user: 0x100000, offset: 0),
            .init(guest: 0, size: 0x4000, user: 0x200000, offset: 0x2000),
        ], expected: .guestOverlap(region: 1, other: 0)),
        .init(description: "user overlap", regions: [
            .init(guest: 0, size: 0x2000, user: 0x100000, offset: 0),
            .init(guest: 0x10000, size: 0x1000, user: 0x101000, offset: 0x2000),
        ], expected: .userOverlap(region: 1, other: 0)),
        .init(description: "too many regions", regions: (0..<9).map {
            .init(guest: UInt64($0) << 12, size: 0x1000, user: 0x100000 + (UInt64($0) << 12), offset: UInt64($0) << 12)
        }, expected: .tooManyRegions(count: 9, limit: 8)),
    ]

    @Test(arguments: tableCases)
    func rejectsBadTables(_ c: TableCase) throws {
        let file = try GuestMemoryFile(size: fileSize)
        let table = c.regions.map {
            MemoryRegionDescriptor(guestAddress: GuestAddress($0.guest), size: $0.size, userAddress: $0.user,
                                   mmapOffset: $0.offset, fd: file.fd)
        }
        #expect(throws: c.expected) { try MemoryMap(regions: table) }
    }

    @Test func configurableRegionLimit() throws {
        let file = try GuestMemoryFile(size: fileSize)
        let table = (0..<9).map {
            MemoryRegionDescriptor(guestAddress: GuestAddress(UInt64($0) << 12), size: 0x1000,
                                   userAddress: 0x100000 + (UInt64($0) << 12), mmapOffset: UInt64($0) << 12, fd: file.fd)
        }
        let map = try MemoryMap(regions: table, maxRegions: 16)
        #expect(map.descriptors.count == 9)
    }

    @Test func badFdIsAnFstatError() {
        let table = [MemoryRegionDescriptor(guestAddress: 0, size: 0x1000, userAddress: 0, mmapOffset: 0,
                                            fd: FileDescriptor(rawValue: 100_000))]
        #expect(throws: MemoryMapError.fstatFailed(region: 0, .badFileDescriptor)) { try MemoryMap(regions: table) }
    }

    /// The backend maps the frontend's memfd and sees the same bytes, including at an
    /// mmap offset that is not page aligned.
    @Test func backendSharesFrontendMemoryAtUnalignedOffsets() throws {
        let file = try GuestMemoryFile(size: fileSize)
        let frontend = try MemoryMap(frontend: file, regions: [
            FrontendRegion(guestAddress: 0, size: 0x3000, fileOffset: 0x123),
            FrontendRegion(guestAddress: 0x100000, size: 0x1000, fileOffset: 0x8001),
        ])
        let backend = try MemoryMap(regions: frontend.descriptors)
        try frontend.write([1, 2, 3, 4], at: 0x2ffc)
        #expect(try backend.read(at: 0x2ffc, count: 4) == [1, 2, 3, 4])
        try backend.store(UInt64(0x1122334455667788), at: 0x100ff8)
        #expect(try frontend.load(UInt64.self, at: 0x100ff8) == 0x1122334455667788)
        // Same file bytes through a third, raw view: region 1 starts at file offset 0x8001.
        let raw = try MemoryMap(regions: [MemoryRegionDescriptor(guestAddress: 0, size: fileSize, userAddress: 0,
                                                                  mmapOffset: 0, fd: file.fd)])
        #expect(try raw.load(UInt8.self, at: GuestAddress(0x8001 + 0xff8)) == 0x88)
        #expect(try raw.read(at: GuestAddress(0x123 + 0x2ffc), count: 2) == [1, 2])
    }

    @Test func littleEndianAccessAtUnalignedAddresses() throws {
        let map = try makeMemory(size: 0x2000)
        try map.store(UInt32(0x11223344), at: 0x101)
        #expect(try map.read(at: 0x101, count: 4) == [0x44, 0x33, 0x22, 0x11])
        try map.store(UInt16(0xbeef), at: 0x1ffe)
        #expect(try map.load(UInt16.self, at: 0x1ffe) == 0xbeef)
        #expect(throws: MemoryMapError.outOfRange(0x1fff, length: 2)) { try map.store(UInt16(1), at: 0x1fff) }
    }

    @Test func translationBounds() throws {
        let file = try GuestMemoryFile(size: fileSize)
        // Guest-contiguous regions that are not contiguous in the file.
        let map = try MemoryMap(frontend: file, regions: [
            FrontendRegion(guestAddress: 0, size: 0x1000, fileOffset: 0),
            FrontendRegion(guestAddress: 0x1000, size: 0x1000, fileOffset: 0x4000),
        ])
        #expect(try map.buffer(at: 0xfff, length: 1).count == 1)
        #expect(try map.buffer(at: 0x1000, length: 0x1000).count == 0x1000)
        // Straddles the two regions.
        #expect(throws: MemoryMapError.outOfRange(0xfff, length: 2)) { try map.buffer(at: 0xfff, length: 2) }
        // One byte past the end.
        #expect(throws: MemoryMapError.outOfRange(0x1000, length: 0x1001)) { try map.buffer(at: 0x1000, length: 0x1001) }
        #expect(throws: MemoryMapError.outOfRange(0x2000, length: 1)) { try map.buffer(at: 0x2000, length: 1) }
        #expect(throws: MemoryMapError.outOfRange(0x2000, length: 0)) { try map.buffer(at: 0x2000, length: 0) }
        // UInt64 overflow of address + length.
        #expect(throws: MemoryMapError.rangeWraps(address: UInt64.max, length: 2)) { try map.buffer(at: GuestAddress(UInt64.max), length: 2) }
        #expect(throws: MemoryMapError.rangeWraps(address: 0x10, length: UInt64.max)) { try map.buffer(at: 0x10, length: UInt64.max) }
        #expect(!map.contains(0xfff, length: 2))
        #expect(map.contains(0x1fff, length: 1))
    }

    @Test func userAddressTranslation() throws {
        let file = try GuestMemoryFile(size: fileSize)
        let map = try MemoryMap(frontend: file, regions: [
            FrontendRegion(guestAddress: 0x10000, size: 0x1000, fileOffset: 0x2000),
        ])
        let user = map.descriptors[0].userAddress
        #expect(user == file.userAddress(atOffset: 0x2000))
        #expect(try map.guestAddress(ofUser: user + 0x10, length: 0x20) == GuestAddress(0x10010))
        #expect(throws: MemoryMapError.userOutOfRange(userAddress: user + 0xff0, length: 0x20)) {
            try map.guestAddress(ofUser: user + 0xff0, length: 0x20)
        }
        #expect(throws: MemoryMapError.userOutOfRange(userAddress: user - 1, length: 1)) {
            try map.guestAddress(ofUser: user - 1, length: 1)
        }
        #expect(throws: MemoryMapError.rangeWraps(address: UInt64.max, length: 1)) {
            try map.guestAddress(ofUser: UInt64.max, length: 1)
        }
        try map.write([9], at: 0x10004)
        #expect(try map.buffer(atUser: user + 4, length: 1)[0] == 9)
        let value = try map.withBuffer(at: 0x10004, length: 1) { $0[0] }
        #expect(value == 9)
    }
}
