import Testing
import TestFrontend

@Suite struct VirtioNetHelpersTests {
    @Test func headerRoundTripsAndIsLittleEndian() throws {
        let h = VirtioNetHeader(flags: 1, gsoType: 4, headerLength: 0x0102, gsoSize: 0x0304,
                                checksumStart: 0x0506, checksumOffset: 0x0708, numBuffers: 0x090a)
        #expect(h.bytes == [1, 4, 2, 1, 4, 3, 6, 5, 8, 7, 0x0a, 9])
        #expect(VirtioNetHeader(h.bytes) == h)
        #expect(VirtioNetHeader(Array(h.bytes.prefix(11))) == nil)
    }

    @Test func oneBufferPerPacketWithoutMergeable() throws {
        var rx = VirtioNetReceiver(mergeable: false)
        // num_buffers is ignored without MRG_RXBUF.
        let packet = try rx.add(VirtioNetHeader(numBuffers: 3).bytes + [1, 2, 3])
        #expect(packet?.frame == [1, 2, 3])
        #expect(packet?.buffers == 1)
        #expect(!rx.isPartial)
    }

    @Test func mergeableBuffersAreJoined() throws {
        var rx = VirtioNetReceiver(mergeable: true)
        #expect(try rx.add(VirtioNetHeader(numBuffers: 3).bytes + [1, 2]) == nil)
        #expect(rx.isPartial)
        #expect(try rx.add([3, 4]) == nil)
        let packet = try rx.add([5])
        #expect(packet?.frame == [1, 2, 3, 4, 5])
        #expect(packet?.buffers == 3)
        #expect(try rx.add(VirtioNetHeader(numBuffers: 1).bytes + [9])?.frame == [9])
    }

    @Test func malformedRxBuffersAreErrors() throws {
        var rx = VirtioNetReceiver(mergeable: true)
        #expect(throws: TestFrontendError.self) { try rx.add([0, 0, 0]) }
        #expect(throws: TestFrontendError.self) { try rx.add(VirtioNetHeader(numBuffers: 0).bytes) }
    }
}
