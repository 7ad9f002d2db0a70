import CShim
import Testing
@testable import VMM

@Suite struct GDTTests {
    @Test func encodesKnownDescriptors() {
        // Well-known flat descriptors (SDM vol. 3A figure 3-8).
        #expect(GDT.descriptor(base: 0, limit: 0xfffff, access: 0x9b, flags: 0xc) == 0x00cf_9b00_0000_ffff)
        #expect(GDT.descriptor(base: 0, limit: 0xfffff, access: 0x9b, flags: 0xa) == 0x00af_9b00_0000_ffff)
        #expect(GDT.descriptor(base: 0, limit: 0xfffff, access: 0x93, flags: 0xc) == 0x00cf_9300_0000_ffff)
        #expect(GDT.descriptor(base: 0, limit: 0x67, access: 0x8b, flags: 0) == 0x0000_8b00_0000_0067)
        // Base and limit bits land in their split fields.
        #expect(GDT.descriptor(base: 0x1234_5678, limit: 0xabcde, access: 0x93, flags: 0x4) == 0x124a_9334_5678_bcde)
    }

    @Test func tablesDifferOnlyInTheCodeDescriptor() {
        let pvh = GDT.table(for: .protected32), long = GDT.table(for: .long64)
        #expect(pvh == [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x0000_8b00_0000_0067])
        #expect(long == [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x0000_8b00_0000_0067])
    }

    @Test func segmentsFor32BitProtectedMode() {
        let (code, data, tss) = GDT.segments(for: .protected32)
        #expect(code.selector == 0x08 && code.base == 0 && code.limit == 0xffff_ffff)
        #expect(code.type == 0xb && code.present == 1 && code.dpl == 0 && code.s == 1)
        #expect(code.db == 1 && code.l == 0 && code.g == 1 && code.unusable == 0)
        #expect(data.selector == 0x10 && data.limit == 0xffff_ffff && data.type == 0x3)
        #expect(data.db == 1 && data.s == 1 && data.g == 1 && data.present == 1)
        #expect(tss.selector == 0x18 && tss.type == 0xb && tss.s == 0 && tss.present == 1)
        #expect(tss.limit == 0x67 && tss.g == 0 && tss.base == 0)
    }

    @Test func segmentsForLongMode() {
        let (code, data, _) = GDT.segments(for: .long64)
        #expect(code.l == 1 && code.db == 0 && code.type == 0xb && code.g == 1)
        #expect(data.l == 0 && data.db == 1 && data.type == 0x3)
    }

    @Test func decodesBaseAndByteLimit() {
        let raw = GDT.descriptor(base: 0x1234_5678, limit: 0x00abc, access: 0x93, flags: 0x4)
        let segment = GDT.segment(raw, selector: 0x23)
        #expect(segment.base == 0x1234_5678 && segment.limit == 0xabc && segment.g == 0 && segment.selector == 0x23)
    }

    @Test func writesTheTableBelowTheIDT() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let limit = try GDT.write(.long64, to: memory)
        #expect(limit == 31)
        for (index, entry) in GDT.table(for: .long64).enumerated() {
            #expect(try memory.readValue(UInt64.self, at: Layout.gdtAddress + UInt64(index * 8)) == entry)
        }
        #expect(Layout.gdtAddress + UInt64(limit) + 1 <= Layout.idtAddress)
    }
}
