import Glibc
import IPC
import VirtioCore
@testable import WorkerCore

/// A toy device on the framework: each chain gets an 8-byte stamp {u32 queue, u32
/// sequence} in its writable part (used len 8). A chain whose first readable byte is
/// 0xEE makes the handler throw. At most `budget` chains per turn, `delay` µs each, so
/// control messages land between turns of a running queue.
final class StampDevice: BackendDevice {
    static let poison: UInt8 = 0xEE
    let queueCount: Int
    let threadLayout: [[Int]]
    let budget: Int
    let delayMicroseconds: UInt32
    var features: UInt64 { VirtioFeature.version1 | VirtioFeature.eventIdx }
    var maxQueueSize: Int { 256 }
    var counterNames: [String] { StampCounter.names }
    private(set) var changes: [Int] = []

    init(queues: Int, layout: [[Int]]? = nil, budget: Int = 1000, delayMicroseconds: UInt32 = 0) {
        queueCount = queues
        threadLayout = layout ?? (0..<queues).map { [$0] }
        self.budget = budget
        self.delayMicroseconds = delayMicroseconds
    }

    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler {
        StampHandler(budget: budget, delayMicroseconds: delayMicroseconds)
    }

    func queueStateChanged(_ queue: Int, backend: DeviceBackend) { changes.append(queue) }
}

enum StampCounter: Int, DeviceCounter { case stampsWritten, poisonSeen }

struct Poisoned: Error, CustomStringConvertible { var description: String { "poisoned chain" } }

final class StampHandler: QueueThreadHandler {
    let budget: Int
    let delayMicroseconds: UInt32
    /// Next sequence number per slot.
    private var sequence: [Int: UInt32] = [:]

    init(budget: Int, delayMicroseconds: UInt32) { self.budget = budget; self.delayMicroseconds = delayMicroseconds }

    func handle(_ context: inout QueueThreadContext) throws -> Bool {
        var more = false
        for slot in context.rings.indices where context.rings[slot].isActive {
            var q = context.rings[slot].queue!
            defer { context.rings[slot].queue = q }
            var served = 0
            while let chain = try q.popAvailable() {
                if chain.readableBytes(offset: 0, count: 1) == [StampDevice.poison] {
                    context.counters.add(StampCounter.poisonSeen)
                    throw Poisoned()
                }
                let seq = sequence[slot, default: 0]
                sequence[slot] = seq + 1
                var stamp = (UInt32(context.rings[slot].index).littleEndian, seq.littleEndian)
                let n = withUnsafeBytes(of: &stamp) { chain.copyToWritable(from: $0) }
                try q.stageUsed(head: chain.head, length: UInt32(n))
                context.counters.add(StampCounter.stampsWritten)
                if delayMicroseconds > 0 { usleep(delayMicroseconds) }
                served += 1
                if served >= budget { more = true; break }
            }
            q.publish(notifying: context.rings[slot].callFD, counters: &context.counters)
        }
        return more
    }
}
