import Foundation
import Testing
import VirtioCore
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
        #expect(throws: MemoryMapError.self) { try memory.write([1], at: 16 << 20) }
        #expect(throws: MemoryMapError.self) { try memory.read(at: (16 << 20) - 2, count: 3) }
        #expect(throws: MemoryMapError.self) { try memory.read(at: UInt64.max, count: 2) }
        try memory.writeValue(UInt32(0xdeadbeef), at: 0x2001)
        #expect(try memory.readValue(UInt32.self, at: 0x2001) == 0xdeadbeef)
    }

    @Test func rejectsTinyOrUnalignedSizes() {
        #expect(throws: GuestMemoryError.self) { try GuestMemory(size: 1 << 20) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(size: (32 << 20) + 1) }
    }

    /// What SET_MEM_TABLE and KVM get: one region per layout region, at its file offset in
    /// the one memfd, user address = volt-vmm's mapping of that offset.
    @Test func memoryTableIsTheLayout() throws {
        let memory = try GuestMemory(size: 5 << 30)
        #expect(memory.map.descriptors == memory.regions.map {
            MemoryRegionDescriptor(guestAddress: GuestAddress($0.guestBase), size: $0.size,
                                   userAddress: memory.hostAddress(of: $0), mmapOffset: $0.fileOffset, fd: memory.file.fd)
        })
        #expect(memory.hostAddress(of: memory.regions[1]) == memory.hostAddress(of: memory.regions[0]) + (3 << 30))
    }

    /// The mapping is the named memfd, not inherited by fork (the launcher never maps it) and
    /// MAP_NORESERVE (smaps VmFlags `dc` and `nr`; the kernel drops `nr` under overcommit=2).
    @Test func mappingIsNamedAndNotForked() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let start = String(memory.hostAddress(of: memory.regions[0]), radix: 16)
        let smaps = Self.procText("/proc/self/smaps")
        guard let header = smaps.range(of: "\n\(start)-") ?? smaps.range(of: "\n0\(start)-") else {
            Issue.record("no mapping at 0x\(start) in /proc/self/smaps")
            return
        }
        let rest = smaps[header.upperBound...]
        #expect(rest.prefix { $0 != "\n" }.hasSuffix("/memfd:volt-guest-ram (deleted)"))
        let flags = rest.range(of: "VmFlags:").map { rest[$0.upperBound...].prefix { $0 != "\n" } } ?? ""
        #expect(flags.split(separator: " ").contains("dc"), "MADV_DONTFORK: \(flags)")
        #expect(Self.procText("/proc/sys/vm/overcommit_memory").hasPrefix("2") || flags.split(separator: " ").contains("nr"), "MAP_NORESERVE: \(flags)")
    }

    /// Read to EOF: procfs files report size 0.
    static func procText(_ path: String) -> String {
        String(decoding: FileHandle(forReadingAtPath: path)?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
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
