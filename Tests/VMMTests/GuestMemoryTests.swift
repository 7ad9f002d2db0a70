import Testing
@testable import VMM

@Suite struct GuestMemoryTests {
    @Test func smallMemoryIsOneRegion() {
        #expect(GuestMemory.layout(size: 256 << 20) == [.init(guestBase: 0, size: 256 << 20, fileOffset: 0)])
    }

    @Test func largeMemoryIsSplitAroundTheHole() {
        let regions = GuestMemory.layout(size: 4 << 30)
        #expect(regions == [
            .init(guestBase: 0, size: 3 << 30, fileOffset: 0),
            .init(guestBase: 4 << 30, size: 1 << 30, fileOffset: 3 << 30),
        ])
    }

    @Test func accessesAreBoundsChecked() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.write([1, 2, 3], at: 0x1000)
        #expect(try memory.read(at: 0x1000, count: 3) == [1, 2, 3])
        #expect(throws: GuestMemoryError.self) { try memory.write([1], at: 16 << 20) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: (16 << 20) - 2, count: 3) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: UInt64.max, count: 2) }
        try memory.writeValue(UInt32(0xdeadbeef), at: 0x2001)
        #expect(try memory.readValue(UInt32.self, at: 0x2001) == 0xdeadbeef)
    }

    @Test func rejectsTinyOrUnalignedSizes() {
        #expect(throws: GuestMemoryError.self) { try GuestMemory(size: 1 << 20) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(size: (32 << 20) + 1) }
    }
}

@Suite struct E820Tests {
    @Test func smallGuestHasLowAndHighRAM() {
        let map = E820Entry.map(for: GuestMemory.layout(size: 256 << 20))
        #expect(map == [
            .init(address: 0, size: 0x9fc00, kind: .ram),
            .init(address: 0x9fc00, size: 0x400, kind: .reserved),
            .init(address: 0xf0000, size: 0x10000, kind: .reserved),
            .init(address: 0x100000, size: (256 << 20) - 0x100000, kind: .ram),
        ])
    }

    @Test func largeGuestSkipsTheMMIOHole() {
        let map = E820Entry.map(for: GuestMemory.layout(size: 5 << 30))
        let expected: [E820Entry] = [
            E820Entry(address: 0x100000, size: (3 << 30) - 0x100000, kind: .ram),
            E820Entry(address: 4 << 30, size: 2 << 30, kind: .ram),
        ]
        #expect(Array(map.suffix(2)) == expected)
        #expect(!map.contains { $0.address < Layout.mmioHoleEnd && $0.address + $0.size > Layout.mmioHoleStart })
    }
}
