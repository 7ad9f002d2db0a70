import Testing
import VirtioCore

@Suite struct GuestAddressTests {
    @Test func checkedArithmetic() throws {
        let a = GuestAddress(0x1000)
        #expect(a.checkedAdd(0x10) == GuestAddress(0x1010))
        #expect(GuestAddress(UInt64.max).checkedAdd(1) == nil)
        #expect(GuestAddress(UInt64.max - 1).checkedAdd(1) == GuestAddress(UInt64.max))
        #expect(a.checkedSub(0x1001) == nil)
        #expect(a.checkedSub(0x1000) == GuestAddress(0))
        #expect(GuestAddress(0x1010).offset(from: a) == 0x10)
        #expect(a.offset(from: GuestAddress(0x1010)) == nil)
        #expect(throws: GuestAddressOverflow(base: GuestAddress(UInt64.max), offset: 2)) {
            try GuestAddress(UInt64.max).adding(2)
        }
        #expect(try a.adding(1) == GuestAddress(0x1001))
    }

    @Test func orderingAndAlignment() {
        #expect(GuestAddress(1) < GuestAddress(2))
        #expect(GuestAddress(0x30).isAligned(to: 16))
        #expect(!GuestAddress(0x31).isAligned(to: 2))
        #expect(GuestAddress(0xabc).description == "0xabc")
    }
}
