@testable import VirtioCore
import Glibc

/// Guest memory with holes: three regions of one 48 KiB memfd at guest 0x0, 0x10000
/// and 0x30000 (16 KiB each); everything else is a hole. Made once per process.
nonisolated(unsafe) let holeyMemory: (file: GuestMemoryFile, map: MemoryMap, regions: [FrontendRegion])? = {
    let regions = [
        FrontendRegion(guestAddress: GuestAddress(0x0), size: 0x4000, fileOffset: 0),
        FrontendRegion(guestAddress: GuestAddress(0x10000), size: 0x4000, fileOffset: 0x4000),
        FrontendRegion(guestAddress: GuestAddress(0x30000), size: 0x4000, fileOffset: 0x8000),
    ]
    guard let file = try? GuestMemoryFile(size: 0xC000), let map = try? MemoryMap(frontend: file, regions: regions) else { return nil }
    return (file, map, regions)
}()

/// Target `virtqueue`: the input is guest memory contents (descriptor tables, rings,
/// indirect tables) plus the queue's geometry; the device pops every chain and
/// returns it. Invariants: every buffer lies inside one mapped region (never in a
/// hole), readable buffers precede writable ones, a chain has at most queue-size
/// buffers and < 2^32 bytes, its lengths add up, and each used length is accepted.
func fuzzVirtqueue(_ data: [UInt8]) {
    guard let memory = holeyMemory else { invariant(false, "no guest memory"); return }
    var input = FuzzInput(data)
    let size = UInt32(1) << UInt32(input.u8() % 9)      // 1...256
    let eventIdx = input.u8() & 1 != 0
    // Ring addresses: mostly inside region 0, sometimes anywhere (holes, unaligned).
    func address(_ fallback: UInt64) -> GuestAddress {
        let raw = input.u32()
        return GuestAddress(raw & 1 == 0 ? fallback : UInt64(raw >> 1))
    }
    let desc = address(0x0), avail = address(0x1000), used = address(0x2000)
    let nextAvail = input.u16(), nextUsed = input.u16()
    // Guest memory: zero it, then scatter the rest of the input as (offset, bytes) runs.
    let base = memory.file.base
    memset(base, 0, 0xC000)
    while !input.isEmpty {
        let offset = Int(input.u16()) % 0xC000
        let run = input.take(Int(input.u8()))
        let n = min(run.count, 0xC000 - offset)
        run.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
    }
    guard var queue = try? Virtqueue(memory: memory.map, size: size, descriptorTable: desc, availableRing: avail,
                                     usedRing: used, eventIdx: eventIdx, nextAvail: nextAvail, nextUsed: nextUsed) else { return }
    var popped = 0
    while popped < Int(size) + 2 {
        let chain: DescriptorChain?
        do { chain = try queue.popAvailable() } catch { return }
        guard let chain else { break }
        popped += 1
        invariant(chain.head < UInt16(size), "head \(chain.head) >= size \(size)")
        invariant(chain.count <= Int(size), "chain of \(chain.count) buffers > queue size \(size)")
        var readable: UInt64 = 0, writable: UInt64 = 0, seenWritable = false
        for buffer in chain {
            invariant(memory.map.contains(buffer.address, length: UInt64(buffer.length)),
                      "buffer \(buffer.address)+\(buffer.length) outside the memory map")
            let start = buffer.address.rawValue
            invariant(memory.regions.contains { start >= $0.guestAddress.rawValue && start + UInt64(buffer.length) <= $0.guestAddress.rawValue + $0.size },
                      "buffer \(buffer.address)+\(buffer.length) not within one region")
            if buffer.writable { seenWritable = true; writable += UInt64(buffer.length) } else {
                invariant(!seenWritable, "readable buffer after a writable one")
                readable += UInt64(buffer.length)
            }
        }
        invariant(readable == UInt64(chain.readableLength) && writable == UInt64(chain.writableLength), "lengths do not add up")
        invariant(readable + writable <= UInt64(UInt32.max), "chain over 2^32 - 1 bytes")
        invariant(chain.readableCount + chain.writableCount == chain.count, "counts do not add up")
        do { try queue.addUsed(head: chain.head, length: chain.writableLength) } catch {
            invariant(false, "addUsed refused a popped chain: \(error)")
        }
    }
}
