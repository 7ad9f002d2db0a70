@testable import NetWorker
import Testing
import VirtioCore

/// The RX cache keeps the memory map of every chain it holds, and no map longer.
struct RXChainCacheTests {
    private static let size: UInt64 = 1 << 20

    private func map(_ file: GuestMemoryFile) throws -> MemoryMap {
        try MemoryMap(frontend: file, regions: [FrontendRegion(guestAddress: GuestAddress(0), size: Self.size, fileOffset: 0)])
    }

    @Test func olderMapIsHeldUntilItsLastChainLeaves() throws {
        let file = try GuestMemoryFile(size: Self.size)
        var mapA: MemoryMap? = try map(file)
        weak var weakA = mapA
        var queueA: Virtqueue?
        let rings: (desc: GuestAddress, avail: GuestAddress, used: GuestAddress)
        do {
            var driver = try DriverQueue(memory: mapA!, size: 8, at: GuestAddress(0))
            for i in 0..<3 {
                try driver.addChain([DriverBuffer(GuestAddress(0x10000 + UInt64(i) * 0x1000), length: 1526, writable: true)])
            }
            try driver.publish()
            queueA = try driver.deviceQueue()
            rings = (driver.descriptorTable, driver.availableRing, driver.usedRing)
        }
        var cache = RXChainCache()
        #expect(try cache.appendNext(from: &queueA!))
        #expect(try cache.appendNext(from: &queueA!))
        // SET_MEM_TABLE: a new map of the same memory, the ring moved over to it.
        let mapB = try map(file)
        var queueB = try Virtqueue(memory: mapB, size: 8, descriptorTable: rings.desc, availableRing: rings.avail,
                                   usedRing: rings.used, eventIdx: false, nextAvail: queueA!.nextAvail)
        queueA = nil
        mapA = nil
        #expect(weakA != nil, "two cached chains point into the first map")
        _ = try cache.appendNext(from: &queueB)
        let (count, held) = (cache.count, cache.heldOlderMaps)
        #expect(count == 3 && held == 1)
        cache.removeFirst(1)
        let heldAfterOne = cache.heldOlderMaps
        #expect(weakA != nil && heldAfterOne == 1, "one chain of the first map is still cached")
        cache.removeFirst(1)
        let heldAfterTwo = cache.heldOlderMaps
        #expect(heldAfterTwo == 0 && weakA == nil, "the first map is gone with its last chain")
        cache.removeFirst(1)
        let empty = cache.isEmpty
        #expect(empty)
    }
}
