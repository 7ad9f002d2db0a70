/// A token bucket's shape, as Firecracker's `rate_limiter` describes one: `size` tokens,
/// refilled completely every `refillMilliseconds`, plus `oneTimeBurst` tokens at start
/// that are never refilled. Bytes for a bandwidth bucket, requests for an ops bucket.
public struct TokenBucketSpec: Equatable, Sendable {
    public var size: UInt64
    public var refillMilliseconds: UInt64
    public var oneTimeBurst: UInt64

    public init(size: UInt64, refillMilliseconds: UInt64, oneTimeBurst: UInt64 = 0) {
        self.size = size; self.refillMilliseconds = refillMilliseconds; self.oneTimeBurst = oneTimeBurst
    }

    /// `size=N,refill-ms=T[,burst=B]`.
    public static func parse(_ text: String, option: String) throws(UsageError) -> TokenBucketSpec {
        let fix = "write \(option) size=N,refill-ms=T[,burst=B] (N > 0 tokens refilled every T ms, 1-3600000)"
        var values: [String: UInt64] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, ["size", "refill-ms", "burst"].contains(String(kv[0])), values[String(kv[0])] == nil,
                  let n = UInt64(kv[1]) else {
                throw UsageError("\(option) \(text): '\(part)' is not size=, refill-ms= or burst= with a number", fix: fix)
            }
            values[String(kv[0])] = n
        }
        guard let size = values["size"], size > 0, size <= 1 << 40,
              let refill = values["refill-ms"], (1...3_600_000).contains(refill) else {
            throw UsageError("\(option) \(text): needs size > 0 and refill-ms in 1...3600000", fix: fix)
        }
        let burst = values["burst"] ?? 0
        guard burst <= 1 << 40 else { throw UsageError("\(option) \(text): burst is too large", fix: fix) }
        return TokenBucketSpec(size: size, refillMilliseconds: refill, oneTimeBurst: burst)
    }

    public var text: String {
        "size=\(size),refill-ms=\(refillMilliseconds)" + (oneTimeBurst > 0 ? ",burst=\(oneTimeBurst)" : "")
    }
}

/// volt-rng-worker's own options (the shared ones are `WorkerArguments`'), encoded by
/// volt-vmm and decoded by the worker.
public struct EntropyArguments: DeviceArguments {
    /// Bytes handed to the guest (Firecracker's `rate_limiter.bandwidth`).
    public var bandwidth: TokenBucketSpec?
    /// Requests served (Firecracker's `rate_limiter.ops`).
    public var ops: TokenBucketSpec?
    /// QEMU's vhost-user-rng uses 1024-entry rings.
    public var queueSize = 1024

    public init() {}

    public init(bandwidth: TokenBucketSpec?, ops: TokenBucketSpec? = nil) {
        self.bandwidth = bandwidth; self.ops = ops
    }

    public static var faultDevice: FaultSpec.Device { .entropy }

    public mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool {
        switch cursor.name {
        case "--bandwidth": bandwidth = try TokenBucketSpec.parse(try cursor.value(), option: "--bandwidth")
        case "--ops": ops = try TokenBucketSpec.parse(try cursor.value(), option: "--ops")
        case "--queue-size": queueSize = try cursor.powerOfTwo(1...32768)
        default: return false
        }
        return true
    }

    public func validate() throws(UsageError) {}

    public func encode() -> [String] {
        (bandwidth.map { ["--bandwidth", $0.text] } ?? []) + (ops.map { ["--ops", $0.text] } ?? [])
            + (queueSize != 1024 ? ["--queue-size", "\(queueSize)"] : [])
    }
}
