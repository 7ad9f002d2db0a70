import CShim
import Glibc
import IPC
import VirtioCore
import WorkerCore

/// The request queue (virtio 1.2, 5.4.6): each chain's device-writable buffers are
/// filled from getrandom(2), straight into guest memory, and returned with used.len =
/// the bytes written. Readable buffers are ignored; a chain with nothing writable goes
/// back with len 0. With a rate limit the queue waits (a timer, not the next kick: a
/// driver that sent everything it had waits for us) until the buckets allow a request.
final class EntropyQueueHandler: QueueThreadHandler {
    /// At most this many bytes per request (the spec lets the device fill less): a
    /// guest offering a huge buffer cannot hold the thread for long.
    static let maxBytesPerRequest: UInt32 = 64 * 1024
    /// Requests per turn, so a flood of tiny requests cannot starve the loop.
    static let budget = 256

    private var limiter: RateLimiter
    private let faults: FaultInjector
    private let zeroPercent: Int
    private var chain = DescriptorChain()
    private let iovecs: UnsafeMutableBufferPointer<iovec>

    init(limiter: RateLimiter, faults: FaultInjector, maxQueueSize: Int) {
        self.limiter = limiter
        self.faults = faults
        zeroPercent = faults.zeroPercent
        iovecs = .allocate(capacity: maxQueueSize)
    }

    deinit { iovecs.deallocate() }

    func handle(_ context: inout QueueThreadContext) -> Bool {
        guard context.rings[0].isActive, var queue = context.rings[0].queue else { return false }
        var served = 0
        var broken: VirtqueueError?
        queue.disableNotifications()
        while served < Self.budget {
            do {
                guard try queue.popAvailable(into: &chain) else {
                    // Ask for kicks again, then re-check: a chain added meanwhile sends none.
                    if try queue.enableNotifications() { queue.disableNotifications(); continue }
                    break
                }
            } catch let VirtqueueError.malformedChain(head, _) where head < queue.size {
                context.counters.add(EntropyCounter.errorsMalformedChain)
                try? queue.stageUsed(head: head, length: 0)
                served += 1
                continue
            } catch {
                broken = error
                break
            }
            let wanted = min(chain.writableLength, Self.maxBytesPerRequest)
            if wanted > 0, !limiter.isUnlimited {
                let wait = limiter.waitMilliseconds(forBytes: UInt64(wanted), now: TokenBucket.now())
                if wait > 0 {
                    // Not yet: put the chain back (nothing was staged) and come back when
                    // the buckets hold a whole request.
                    queue.nextAvail &-= 1
                    context.wakeAfterMilliseconds = wait
                    context.counters.add(EntropyCounter.rateLimited)
                    break
                }
            }
            served += 1
            let written = fill(wanted, &context.counters)
            do { try queue.stageUsed(head: chain.head, length: written) } catch { broken = error; break }
        }
        queue.publish(notifying: context.rings[0].callFD, counters: &context.counters)
        context.rings[0].queue = queue
        if served > 0, let ms = faults.delayMilliseconds {
            // delay,ms=D: every turn that served requests completes D ms late.
            FaultInjector.sleep(ms: ms)
            context.counters.faultsInjected &+= 1
        }
        // crash,after=N: the worker dies once N requests have been answered.
        faults.completed(served) { context.counters.faultsInjected &+= 1 }
        if let broken { context.rings[0].fail(broken, counters: &context.counters) }
        return served >= Self.budget
    }

    /// Fills `wanted` bytes of the popped chain's writable part (at most what the rate
    /// limit grants); returns the bytes written.
    private func fill(_ wanted: UInt32, _ counters: inout Counters) -> UInt32 {
        guard wanted > 0, chain.writableCount <= iovecs.count else {
            counters.add(EntropyCounter.errorsMalformedChain)
            return 0
        }
        let granted = UInt32(limiter.take(bytes: UInt64(wanted), now: TokenBucket.now()))
        let count = chain.fillIovecs(writable: true, into: iovecs, length: UInt64(granted))
        let zero = zeroPercent > 0 && faults.roll(zeroPercent)
        var written: UInt32 = 0
        for v in iovecs[..<count] {
            guard let base = v.iov_base else { continue }
            if zero {
                memset(base, 0, v.iov_len)
                written += UInt32(v.iov_len)
                continue
            }
            let n = Self.random(into: UnsafeMutableRawBufferPointer(start: base, count: v.iov_len))
            written += UInt32(n)
            if n < v.iov_len { counters.add(EntropyCounter.errorsEntropySource); break }
        }
        if zero { counters.faultsInjected &+= 1 }
        counters.add(EntropyCounter.requests)
        counters.add(EntropyCounter.bytes, UInt64(written))
        return written
    }

    /// getrandom(2) (the kernel's CSPRNG, flags 0: blocks only until it is seeded at
    /// boot) into `buffer`; returns the bytes filled (fewer only on an error).
    static func random(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < buffer.count {
            let r = volt_getrandom(buffer.baseAddress! + done, UInt(buffer.count - done))
            if r > 0 { done += Int(r); continue }
            if r == -Int(EINTR) { continue }
            return done
        }
        return done
    }
}
