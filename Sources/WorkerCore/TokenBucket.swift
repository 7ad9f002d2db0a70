import Glibc
import IPC

/// A token bucket (Firecracker's rate-limiter model): `size` tokens that refill
/// continuously, `size` per `refill` period, capped at `size`; it starts full, and a
/// one-time burst is spent first and never refilled. Time is CLOCK_MONOTONIC in ns.
public struct TokenBucket: Equatable, Sendable {
    public let size: UInt64
    public let refillNanoseconds: UInt64
    public private(set) var tokens: UInt64
    public private(set) var burst: UInt64
    private var lastRefill: UInt64

    public init(_ spec: TokenBucketSpec, now: UInt64 = TokenBucket.now()) {
        size = spec.size
        refillNanoseconds = spec.refillMilliseconds * 1_000_000
        tokens = spec.size
        burst = spec.oneTimeBurst
        lastRefill = now
    }

    public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Adds what `now - lastRefill` earned. Whole tokens only: the time of a fraction
    /// stays banked, so the long-run rate is exact.
    private mutating func refill(now: UInt64) {
        guard now > lastRefill else { return }
        let elapsed = now - lastRefill
        // A whole period refills everything (and keeps the arithmetic below in range).
        guard elapsed < refillNanoseconds else {
            tokens = size
            lastRefill = now
            return
        }
        // elapsed * size / refill (< size), in 128 bits: the product overflows 64.
        let product = elapsed.multipliedFullWidth(by: size)
        let (earned, _) = refillNanoseconds.dividingFullWidth((product.high, product.low))
        guard earned > 0 else { return }
        if tokens + earned >= size {
            tokens = size
            lastRefill = now
        } else {
            tokens += earned
            // Advance by exactly the time those tokens took.
            let spent = earned.multipliedFullWidth(by: refillNanoseconds)
            let (ns, _) = size.dividingFullWidth((spent.high, spent.low))
            lastRefill += ns
        }
    }

    /// Takes up to `wanted` tokens (burst first); returns how many it got.
    public mutating func take(upTo wanted: UInt64, now: UInt64 = TokenBucket.now()) -> UInt64 {
        refill(now: now)
        let fromBurst = min(burst, wanted)
        burst -= fromBurst
        let fromBucket = min(tokens, wanted - fromBurst)
        tokens -= fromBucket
        return fromBurst + fromBucket
    }

    /// Nanoseconds until at least `n` tokens (at most `size`) are there.
    public mutating func nanosecondsUntil(_ n: UInt64, now: UInt64 = TokenBucket.now()) -> UInt64 {
        refill(now: now)
        let needed = min(n, size)
        if tokens + burst >= needed { return 0 }
        let missing = needed - tokens - burst
        let product = missing.multipliedFullWidth(by: refillNanoseconds)
        let (q, r) = size.dividingFullWidth((product.high, product.low))
        let sinceRefill = now > lastRefill ? now - lastRefill : 0
        let total = q + (r > 0 ? 1 : 0)
        return total > sinceRefill ? total - sinceRefill : 0
    }
}
