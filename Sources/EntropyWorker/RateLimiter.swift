import IPC
import WorkerCore

/// The device's rate limit: a bandwidth bucket (bytes) and an ops bucket (requests),
/// either optional, as Firecracker's `rate_limiter`.
struct RateLimiter {
    var bandwidth: TokenBucket?
    var ops: TokenBucket?

    init(bandwidth: TokenBucketSpec?, ops: TokenBucketSpec?, now: UInt64 = TokenBucket.now()) {
        self.bandwidth = bandwidth.map { TokenBucket($0, now: now) }
        self.ops = ops.map { TokenBucket($0, now: now) }
    }

    var isUnlimited: Bool { bandwidth == nil && ops == nil }

    /// Milliseconds until a request wanting `bytes` can be served in full (or, if it is
    /// larger than the bandwidth bucket, with a full bucket); 0 = now.
    mutating func waitMilliseconds(forBytes bytes: UInt64, now: UInt64) -> Int32 {
        var ns = ops?.nanosecondsUntil(1, now: now) ?? 0
        ns = max(ns, bandwidth?.nanosecondsUntil(max(bytes, 1), now: now) ?? 0)
        guard ns > 0 else { return 0 }
        return Int32(clamping: (ns + 999_999) / 1_000_000)
    }

    /// Takes one op and up to `bytes` bytes; returns the bytes granted (call after
    /// `waitMilliseconds` said 0).
    mutating func take(bytes: UInt64, now: UInt64) -> UInt64 {
        _ = ops?.take(upTo: 1, now: now)
        return bandwidth?.take(upTo: bytes, now: now) ?? bytes
    }
}
