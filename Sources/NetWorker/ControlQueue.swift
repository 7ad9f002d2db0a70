import IPC
import VirtioCore
import WorkerCore

/// The control virtqueue (virtio 1.2, 5.1.6.5), offered with MQ. Only
/// VIRTIO_NET_CTRL_MQ / VQ_PAIRS_SET is supported; everything else is answered ERR.
/// Runs on pair 0's thread (its ring is that thread's slot 2), under its lock.
final class ControlQueue {
    static let classMQ: UInt8 = 4
    static let commandVQPairsSet: UInt8 = 0
    static let ok: UInt8 = 0
    static let err: UInt8 = 1

    /// Most pairs the device has (max_virtqueue_pairs).
    let maxPairs: Int
    /// Applies a VQ_PAIRS_SET; returns false to answer ERR.
    var setPairsHandler: (Int) -> Bool = { _ in false }

    init(maxPairs: Int) {
        self.maxPairs = maxPairs
    }

    func process(_ ring: inout Ring, _ stats: inout NetStats, _ counters: inout Counters) {
        guard ring.isActive, var q = ring.queue else { return }
        var broken: VirtqueueError?
        while true {
            let chain: DescriptorChain
            do {
                guard let c = try q.popAvailable() else {
                    if try q.enableNotifications() { continue }
                    break
                }
                chain = c
            } catch {
                if case let .malformedChain(head, _) = error {
                    stats.controlMalformed += 1
                    try? q.stageUsed(head: head, length: 0)
                    continue
                }
                broken = error
                break
            }
            // struct virtio_net_ctrl: u8 class, u8 command, data..., then u8 ack (writable).
            guard chain.writableLength >= 1, let head = chain.readableBytes(offset: 0, count: 2) else {
                stats.controlMalformed += 1
                try? q.stageUsed(head: chain.head, length: 0)
                continue
            }
            var ack = Self.err
            if head[0] == Self.classMQ, head[1] == Self.commandVQPairsSet,
               chain.readableLength == 4, let data = chain.readableBytes(offset: 2, count: 2) {
                let pairs = Int(UInt16(data[0]) | UInt16(data[1]) << 8)
                // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN is 1, at most max_virtqueue_pairs (5.1.6.5.5).
                if pairs >= 1, pairs <= maxPairs, setPairsHandler(pairs) { ack = Self.ok }
            }
            _ = chain.copyToWritable(offset: 0, bytes: [ack])
            do { try q.stageUsed(head: chain.head, length: 1) } catch .usedRingOverflow {
                q.publishUsed(); try? q.stageUsed(head: chain.head, length: 1)
            } catch {}
        }
        q.publishUsed()
        if q.needsNotification(), let call = ring.callFD {
            EventFD.signal(call)
            stats.interrupts += 1
        }
        ring.queue = q
        if let broken { ring.fail(broken, counters: &counters) }
    }
}
