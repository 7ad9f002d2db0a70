import IPC

/// `--entropy on` or `--entropy rate=BYTES[,burst=BYTES][,ops=N]`: a virtio-rng device
/// served by a volt-rng-worker process that volt-vmm spawns. `rate` bytes and `ops`
/// requests per second are token buckets holding one second's worth; `burst` bytes
/// may go once on top (Firecracker's `rate_limiter`, which the API sets bucket by bucket).
public struct EntropySpec: Equatable {
    public var bandwidth: TokenBucketSpec?
    public var ops: TokenBucketSpec?
    /// `--fault rng<i>:...` given for this device.
    var faults: [FaultSpec] = []

    static let keys: Set<String> = ["rate", "burst", "ops"]

    public init(bandwidth: TokenBucketSpec? = nil, ops: TokenBucketSpec? = nil) {
        self.bandwidth = bandwidth
        self.ops = ops
    }

    public init(parsing text: String) throws {
        if text == "on" { return }
        let option = try KeyValueOption(flag: "--entropy", text: text, allowedKeys: Self.keys)
        let rate = try option.int("rate", default: 0, range: 1...(1 << 30))
        let burst = try option.int("burst", default: 0, range: 0...(1 << 30))
        let ops = try option.int("ops", default: 0, range: 1...1_000_000)
        if option.string("rate") != nil {
            bandwidth = TokenBucketSpec(size: UInt64(rate), refillMilliseconds: 1000, oneTimeBurst: UInt64(burst))
        } else if option.string("burst") != nil {
            throw ConfigError.burstWithoutRate(text)
        }
        if option.string("ops") != nil { self.ops = TokenBucketSpec(size: UInt64(ops), refillMilliseconds: 1000) }
    }

    /// volt-rng-worker's arguments for this device.
    var arguments: EntropyArguments { EntropyArguments(bandwidth: bandwidth, ops: ops) }
}
