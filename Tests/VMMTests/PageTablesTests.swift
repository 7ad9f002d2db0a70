import Testing
@testable import VMM

@Suite struct PageTablesTests {
    @Test func entryValues() {
        #expect(PageTables.pml4Entry() == 0xa003)
        #expect(PageTables.pdptEntry() == 0xb003)
        #expect(PageTables.pdEntry(0) == 0x83)
        #expect(PageTables.pdEntry(1) == 0x20_0083)
        #expect(PageTables.pdEntry(511) == 0x3fe0_0083)
        #expect(PageTables.mappedSize == 1 << 30)
    }

    @Test func writesIdentityMapOfFirstGiB() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.write([UInt8](repeating: 0xff, count: 0x3000), at: Layout.pml4Address)  // stale data
        try PageTables.write(to: memory)
        #expect(try memory.readValue(UInt64.self, at: Layout.pml4Address) == Layout.pdptAddress | 3)
        #expect(try memory.readValue(UInt64.self, at: Layout.pdptAddress) == Layout.pdAddress | 3)
        for slot in 1..<512 {
            #expect(try memory.readValue(UInt64.self, at: Layout.pml4Address + UInt64(slot * 8)) == 0)
            #expect(try memory.readValue(UInt64.self, at: Layout.pdptAddress + UInt64(slot * 8)) == 0)
        }
        for index in 0..<512 {
            let entry = try memory.readValue(UInt64.self, at: Layout.pdAddress + UInt64(index * 8))
            #expect(entry == UInt64(index) << 21 | 0x83)
        }
    }
}
