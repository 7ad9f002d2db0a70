import Testing
import TestFrontend
import VirtioCore

@Suite struct GuestBufferAllocatorTests {
    @Test func alignsReusesAndMerges() throws {
        var a = GuestBufferAllocator(start: GuestAddress(100), size: 1000)
        #expect(a.freeBytes == 960)       // [128, 1088) in 64-byte units
        let x = a.allocate(1), y = a.allocate(100), z = a.allocate(64)
        #expect(x?.address == GuestAddress(128) && y?.address == GuestAddress(192) && z?.address == GuestAddress(320))
        let tooBig = a.allocate(1000)
        #expect(tooBig == nil)
        let freedY = a.release(try #require(y)), freedAgain = a.release(try #require(y))
        #expect(freedY && !freedAgain, "double free is refused")
        let reused = a.allocate(128)
        #expect(reused?.address == GuestAddress(192), "first fit reuses the hole")
        for b in [reused, x, z] { a.release(try #require(b)) }
        #expect(a.freeBytes == 960)
        let whole = a.allocate(960)
        #expect(whole?.address == GuestAddress(128), "neighbours merged back into one block")
    }
}
