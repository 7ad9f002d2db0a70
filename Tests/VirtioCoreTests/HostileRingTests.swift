import Glibc
import Testing
import TestFrontend
@testable import VirtioCore

/// Randomized rings written as a hostile driver would (seeded, so a failure replays):
/// whatever the descriptor table, indirect tables and available ring hold, popping chains
/// never crashes, and every chain that validates lies wholly inside one region of the map
/// at the host address of that region, within the queue-size and 2^32-1-byte limits.
@Suite struct HostileRingTests {
    /// Guest layout: three regions of one memfd, with a hole after the first and the last
    /// two adjacent in guest space but not in the file (so not in host memory either).
    static let layout = [
        FrontendRegion(guestAddress: GuestAddress(0), size: 1 << 20, fileOffset: 0),
        FrontendRegion(guestAddress: GuestAddress(0x11_0000), size: 512 << 10, fileOffset: 1 << 20),
        FrontendRegion(guestAddress: GuestAddress(0x19_0000), size: 256 << 10, fileOffset: 0x1C_0000),
    ]
    static let descriptorTable: UInt64 = 0, availableRing: UInt64 = 0x1_0000, usedRing: UInt64 = 0x2_0000
    /// Guest addresses of prepared indirect tables (region 0, above the rings).
    static let indirectTables: [UInt64] = (0..<8).map { 0x3_0000 + UInt64($0) * 0x1000 }

    struct Driver {
        var random: SplitMix
        let file: GuestMemoryFile
        let queueSize: UInt16

        mutating func below(_ n: UInt64) -> UInt64 { random.next() % n }
        mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }

        /// Writes `value` at guest address `address` through the frontend's view.
        func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) {
            let region = HostileRingTests.layout.first {
                address >= $0.guestAddress.rawValue && address - $0.guestAddress.rawValue < $0.size
            }!
            let offset = region.fileOffset + address - region.guestAddress.rawValue
            file.base.storeBytes(of: value.littleEndian, toByteOffset: Int(offset), as: T.self)
        }

        /// A guest address a driver might put in a descriptor: mostly inside a region,
        /// often at an edge, in the hole, past the end or anywhere at all.
        mutating func address() -> UInt64 {
            let regions = HostileRingTests.layout
            let r = regions[Int(below(UInt64(regions.count)))]
            let start = r.guestAddress.rawValue, end = start + r.size
            switch below(10) {
            case 0..<4: return start + below(r.size)
            case 4, 5: return end - below(64)                        // straddles the end
            case 6: return 0x10_0000 + below(0x1_0000)               // the hole
            case 7: return 0x1D_0000 + below(1 << 20)                // past the last region
            case 8: return UInt64.max - below(1 << 16)               // wraps
            default: return random.next()
            }
        }

        mutating func length() -> UInt32 {
            switch below(8) {
            case 0: return 0
            case 1..<5: return UInt32(1 + below(4096))
            case 5: return UInt32(below(1 << 20))
            case 6: return UInt32.max - UInt32(below(16))
            default: return UInt32(truncatingIfNeeded: random.next())
            }
        }

        mutating func flags(indirectAllowed: Bool) -> UInt16 {
            if chance(5) { return UInt16(truncatingIfNeeded: random.next()) }
            var f: UInt16 = 0
            if chance(60) { f |= DescriptorFlags.next.rawValue }
            if chance(40) { f |= DescriptorFlags.write.rawValue }
            if indirectAllowed && chance(10) { f |= DescriptorFlags.indirect.rawValue }
            return f
        }

        mutating func next(limit: UInt64) -> UInt16 {
            chance(90) ? UInt16(below(limit + 2)) : UInt16(truncatingIfNeeded: random.next())
        }

        mutating func writeDescriptor(at address: UInt64, tableSize: UInt64, indirectAllowed: Bool) {
            var flags = flags(indirectAllowed: indirectAllowed)
            var target = self.address(), length = self.length()
            if flags & DescriptorFlags.indirect.rawValue != 0, chance(80) {
                // Mostly a prepared table of a plausible size, sometimes a bad one.
                target = HostileRingTests.indirectTables[Int(below(UInt64(HostileRingTests.indirectTables.count)))]
                length = chance(90) ? UInt32(16 * (1 + below(UInt64(queueSize) + 1))) : length
                if chance(80) { flags &= ~DescriptorFlags.next.rawValue }
            }
            store(target, at: address)
            store(length, at: address + 8)
            store(flags, at: address + 12)
            store(next(limit: tableSize), at: address + 14)
        }

        /// A new table, new indirect tables and `count` fresh available entries; returns
        /// the avail.idx published (usually `availIndex + count`).
        mutating func scribble(availIndex: UInt16, count: UInt16) -> UInt16 {
            let n = UInt64(queueSize)
            for i in 0..<n {
                writeDescriptor(at: HostileRingTests.descriptorTable + 16 * i, tableSize: n, indirectAllowed: true)
            }
            for table in HostileRingTests.indirectTables {
                for i in 0..<UInt64(min(n + 1, 256)) {
                    writeDescriptor(at: table + 16 * i, tableSize: n, indirectAllowed: chance(3))
                }
            }
            for k in 0..<count {
                let slot = UInt64((availIndex &+ k) & (queueSize - 1))
                store(chance(95) ? UInt16(below(n)) : UInt16(truncatingIfNeeded: random.next()),
                      at: HostileRingTests.availableRing + 4 + 2 * slot)
            }
            // Usually a legal index; sometimes more than a ring ahead.
            let published = chance(95) ? availIndex &+ count : availIndex &+ UInt16(below(0x1_0000))
            store(published, at: HostileRingTests.availableRing + 2)
            return published
        }
    }

    /// Checks a validated chain against the map's regions (read directly, not through the
    /// lookup under test).
    static func check(_ chain: DescriptorChain, _ memory: MemoryMap, queueSize: UInt16) {
        #expect(chain.count >= 1 && chain.count <= Int(queueSize), "chain of \(chain.count) buffers, queue size \(queueSize)")
        var readable: UInt64 = 0, writable: UInt64 = 0
        for (i, buffer) in chain.enumerated() {
            #expect(buffer.writable == (i >= chain.readableCount), "readable buffers first")
            if buffer.writable { writable += UInt64(buffer.length) } else { readable += UInt64(buffer.length) }
            let address = buffer.address.rawValue, length = UInt64(buffer.length)
            let home = memory.regions.first { r in
                address >= r.guestStart && address - r.guestStart < r.size && length <= r.size - (address - r.guestStart)
            }
            guard let home else {
                Issue.record("buffer 0x\(String(address, radix: 16))+\(length) is in no single region")
                continue
            }
            #expect(buffer.host == home.host + Int(address - home.guestStart), "host address of 0x\(String(address, radix: 16))")
        }
        #expect(readable == UInt64(chain.readableLength) && writable == UInt64(chain.writableLength))
        #expect(readable + writable <= UInt64(UInt32.max))
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func hostileRingsNeverEscapeTheMap(seed: UInt64) throws {
        let file = try GuestMemoryFile(size: 2 << 20)
        let frontend = try MemoryMap(frontend: file, regions: Self.layout)
        // The worker's view: its own mappings of the same memfd, as from SET_MEM_TABLE.
        let memory = try MemoryMap(regions: frontend.descriptors)
        var random = SplitMix(state: seed)
        var valid = 0, malformed = 0, jumps = 0
        for _ in 0..<40 {
            let queueSize = UInt16(1) << UInt16(random.next() % 9)   // 1 ... 256
            var driver = Driver(random: random, file: file, queueSize: queueSize)
            var queue = try Virtqueue(memory: memory, size: UInt32(queueSize), descriptorTable: GuestAddress(Self.descriptorTable),
                                      availableRing: GuestAddress(Self.availableRing), usedRing: GuestAddress(Self.usedRing),
                                      eventIdx: driver.chance(50))
            var availIndex: UInt16 = 0
            rounds: for _ in 0..<8 {
                let count = UInt16(driver.below(UInt64(queueSize) + 1))
                availIndex = driver.scribble(availIndex: availIndex, count: count)
                var chain = DescriptorChain()
                for _ in 0...Int(queueSize) {
                    do {
                        guard try queue.popAvailable(into: &chain) else { break }
                        valid += 1
                        Self.check(chain, memory, queueSize: queueSize)
                    } catch .malformedChain {
                        malformed += 1
                    } catch .availIndexJump {
                        jumps += 1
                        break rounds   // the worker stops this queue: the device needs a reset
                    } catch {
                        Issue.record("unexpected \(error)")
                    }
                }
                #expect(queue.nextAvail == availIndex, "every published entry taken once")
                // Resubmission after a restart walks heads the same way.
                let head = UInt16(truncatingIfNeeded: driver.random.next() % (UInt64(queueSize) + 2))
                if let again = try? queue.chain(head: head) { Self.check(again, memory, queueSize: queueSize) }
            }
            random = driver.random
        }
        // Not vacuous: many chains validated, many were refused, and index jumps were seen.
        #expect(valid > 100 && malformed > 100 && jumps > 0, "valid \(valid), malformed \(malformed), jumps \(jumps)")
    }
}
