import IPC
import Testing
@testable import WorkerCore

/// The rate limiter's bucket on a virtual clock: it starts full, refills continuously at
/// size per period without drift, caps at size, spends the one-time burst first.
struct TokenBucketTests {
    static let ms: UInt64 = 1_000_000

    @Test func startsFullAndRefillsAtItsRate() {
        var b = TokenBucket(TokenBucketSpec(size: 1000, refillMilliseconds: 100), now: 0)
        #expect(b.take(upTo: 5000, now: 0) == 1000)
        #expect(b.take(upTo: 1, now: 0) == 0)
        #expect(b.take(upTo: 5000, now: 10 * Self.ms) == 100, "100 tokens per 10 ms")
        #expect(b.take(upTo: 5000, now: 10 * Self.ms + 50_000) == 0, "half a token is not given")
        // Over a long run, asked for every 0.3 ms: exactly the rate, no drift.
        var got: UInt64 = 0
        var t = 10 * Self.ms
        while t + 300_000 <= 10_010 * Self.ms { t += 300_000; got += b.take(upTo: 1_000_000, now: t) }
        #expect((99_900...100_000).contains(got), "\(got) tokens in 10 s at 10000/s")
    }

    @Test func capsAtSizeAndSpendsTheBurstFirst() {
        var b = TokenBucket(TokenBucketSpec(size: 100, refillMilliseconds: 10, oneTimeBurst: 250), now: 0)
        #expect(b.take(upTo: 300, now: 0) == 300, "250 burst + 50")
        #expect(b.burst == 0 && b.tokens == 50)
        #expect(b.take(upTo: 1000, now: 60 * Self.ms) == 100, "capped at size, burst never refills")
    }

    @Test func waitTimesCoverTheMissingTokens() {
        var b = TokenBucket(TokenBucketSpec(size: 1000, refillMilliseconds: 1000), now: 0)
        _ = b.take(upTo: 1000, now: 0)
        #expect(b.nanosecondsUntil(100, now: 0) == 100 * Self.ms)
        #expect(b.nanosecondsUntil(5000, now: 0) == 1000 * Self.ms, "more than size waits for a full bucket")
        #expect(b.nanosecondsUntil(100, now: 40 * Self.ms) == 60 * Self.ms)
        #expect(b.take(upTo: 100, now: 100 * Self.ms) == 100)
    }

    @Test func hugeElapsedTimesDoNotOverflow() {
        var b = TokenBucket(TokenBucketSpec(size: 1 << 40, refillMilliseconds: 1), now: 0)
        _ = b.take(upTo: 1 << 40, now: 0)
        #expect(b.take(upTo: .max, now: 1 << 62) == 1 << 40)
    }

    @Test(arguments: ["", "size=0,refill-ms=10", "size=10", "refill-ms=10", "size=10,refill-ms=0", "size=10,refill-ms=x",
                      "size=10,refill-ms=10,burst", "size=10,refill-ms=10,size=2", "size=10,refill-ms=3600001", "rate=5"])
    func badSpecsAreRefused(_ text: String) {
        #expect(throws: UsageError.self) { try TokenBucketSpec.parse(text, option: "--bandwidth") }
    }

    @Test func specRoundTrips() throws {
        let s = TokenBucketSpec(size: 4096, refillMilliseconds: 100, oneTimeBurst: 8192)
        #expect(try TokenBucketSpec.parse(s.text, option: "--bandwidth") == s)
    }
}
