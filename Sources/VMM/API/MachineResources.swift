import IPC

/// `boot-source` (Firecracker's BootSource).
public struct BootSourceConfig: Equatable, Sendable {
    public var kernelImagePath: String
    public var bootArgs: String?
    public var initrdPath: String?

    public init(kernelImagePath: String, bootArgs: String? = nil, initrdPath: String? = nil) {
        self.kernelImagePath = kernelImagePath; self.bootArgs = bootArgs; self.initrdPath = initrdPath
    }

    static let keys: Set<String> = ["kernel_image_path", "boot_args", "initrd_path"]

    static func read(_ r: ConfigReader, _ f: [String: JSONValue], _ path: String = "") -> BootSourceConfig? {
        let kernel = r.string(f, "kernel_image_path", path)
        let args = r.string(f, "boot_args", path), initrd = r.string(f, "initrd_path", path)
        guard let kernel else {
            if f["kernel_image_path"] == nil { r.problem(join(path, "kernel_image_path"), "required") }
            return nil
        }
        return BootSourceConfig(kernelImagePath: kernel, bootArgs: args, initrdPath: initrd)
    }

    var json: String {
        JSONText.object([("kernel_image_path", JSONText.string(kernelImagePath)), ("initrd_path", JSONText.orNull(JSONText.string(initrdPath))),
                         ("boot_args", JSONText.orNull(JSONText.string(bootArgs)))])
    }
}

/// `machine-config` (Firecracker's MachineConfiguration). Firecracker's defaults: 1 vCPU,
/// 128 MiB.
public struct MachineConfiguration: Equatable, Sendable {
    public var vcpuCount = 1
    public var memSizeMiB = 128
    public var smt = false
    public var trackDirtyPages = false

    public init(vcpuCount: Int = 1, memSizeMiB: Int = 128) { self.vcpuCount = vcpuCount; self.memSizeMiB = memSizeMiB }

    static let keys: Set<String> = ["vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "cpu_template", "huge_pages"]

    /// PUT replaces (`base` nil: the fields it lacks take their defaults, and vcpu_count and
    /// mem_size_mib are required); PATCH changes only what it names.
    static func read(_ r: ConfigReader, _ f: [String: JSONValue], base: MachineConfiguration?, _ path: String = "") -> MachineConfiguration? {
        var m = base ?? MachineConfiguration()
        if base == nil {
            for key in ["vcpu_count", "mem_size_mib"] where f[key] == nil { r.problem(join(path, key), "required") }
        }
        if let n = r.int(f, "vcpu_count", path, range: 1...32) { m.vcpuCount = n }
        if let n = r.int(f, "mem_size_mib", path, range: Int(Layout.minimumMemory >> 20)...(1 << 22)) { m.memSizeMiB = n }
        if let smt = r.bool(f, "smt", path) {
            if smt { r.problem(join(path, "smt"), "true is not supported: volt-vmm gives the guest one thread per core (set it to false or leave it out)") }
            m.smt = smt
        }
        if let track = r.bool(f, "track_dirty_pages", path) {
            if track { r.problem(join(path, "track_dirty_pages"), "true is not supported: volt-vmm takes full snapshots only") }
            m.trackDirtyPages = track
        }
        if let t = f["cpu_template"], t != .null, t != .string("None") {
            r.problem(join(path, "cpu_template"), "CPU templates are not supported (use \"None\" or leave it out)")
        }
        if let h = f["huge_pages"], h != .null, h != .string("None") {
            r.problem(join(path, "huge_pages"), "huge pages are not supported (use \"None\" or leave it out)")
        }
        return m
    }

    var json: String {
        JSONText.object([("vcpu_count", JSONText.int(vcpuCount)), ("mem_size_mib", JSONText.int(memSizeMiB)),
                         ("smt", JSONText.bool(smt)), ("track_dirty_pages", JSONText.bool(trackDirtyPages)),
                         ("huge_pages", JSONText.string("None"))])
    }
}

/// A rate limiter (Firecracker's RateLimiter: `bandwidth` and `ops` token buckets of
/// {size, one_time_burst, refill_time}). An empty or null one means no limit.
struct RateLimiterConfig: Equatable, Sendable {
    var bandwidth: TokenBucketSpec?
    var ops: TokenBucketSpec?

    static let keys: Set<String> = ["bandwidth", "ops"]
    static let bucketKeys: Set<String> = ["size", "one_time_burst", "refill_time"]

    static func read(_ r: ConfigReader, _ value: JSONValue?, _ path: String) -> RateLimiterConfig? {
        guard let value, value != .null else { return nil }
        guard let f = r.object(value, path, allowed: keys) else { return nil }
        return RateLimiterConfig(bandwidth: bucket(r, f["bandwidth"], join(path, "bandwidth")), ops: bucket(r, f["ops"], join(path, "ops")))
    }

    /// A bucket of size 0 or refill_time 0 is no limit (Firecracker's meaning).
    private static func bucket(_ r: ConfigReader, _ value: JSONValue?, _ path: String) -> TokenBucketSpec? {
        guard let value, value != .null, let f = r.object(value, path, allowed: bucketKeys) else { return nil }
        let size = r.int(f, "size", path, range: 0...(1 << 40)), refill = r.int(f, "refill_time", path, range: 0...3_600_000)
        let burst = r.int(f, "one_time_burst", path, range: 0...(1 << 40)) ?? 0
        for key in ["size", "refill_time"] where f[key] == nil { r.problem(join(path, key), "required") }
        guard let size, let refill, size > 0, refill > 0 else { return nil }
        return TokenBucketSpec(size: UInt64(size), refillMilliseconds: UInt64(refill), oneTimeBurst: UInt64(burst))
    }

    var isLimited: Bool { bandwidth != nil || ops != nil }

    var json: String {
        func bucket(_ b: TokenBucketSpec?) -> String? {
            b.map { JSONText.object([("size", JSONText.int($0.size)), ("one_time_burst", JSONText.int($0.oneTimeBurst)),
                                     ("refill_time", JSONText.int($0.refillMilliseconds))]) }
        }
        return JSONText.object([("bandwidth", bucket(bandwidth)), ("ops", bucket(ops))])
    }
}

/// `entropy` (Firecracker's EntropyDevice): a virtio-rng device and its rate limiter.
extension EntropySpec {
    static let apiKeys: Set<String> = ["rate_limiter"]

    static func read(_ r: ConfigReader, _ f: [String: JSONValue], _ path: String = "") -> EntropySpec? {
        let limit = RateLimiterConfig.read(r, f["rate_limiter"], join(path, "rate_limiter"))
        return EntropySpec(bandwidth: limit?.bandwidth, ops: limit?.ops)
    }

    var apiJSON: String {
        let limit = RateLimiterConfig(bandwidth: bandwidth, ops: ops)
        return JSONText.object([("rate_limiter", limit.isLimited ? limit.json : nil)])
    }
}

/// `logger` (Firecracker's Logger).
public struct LoggerConfig: Equatable, Sendable {
    public var logPath: String?
    public var level = "Info"
    public var showLevel = false
    public var showLogOrigin = false
    public var module: String?

    public init() {}

    static let keys: Set<String> = ["log_path", "level", "show_level", "show_log_origin", "module"]
    /// Firecracker's levels, case-insensitive.
    static let levels = ["error", "warning", "warn", "info", "debug", "trace", "off"]

    /// The fields given replace `base`'s (Firecracker's logger update); the rest stay.
    static func read(_ r: ConfigReader, _ f: [String: JSONValue], base: LoggerConfig? = nil, _ path: String = "") -> LoggerConfig? {
        var c = base ?? LoggerConfig()
        if let logPath = r.string(f, "log_path", path) { c.logPath = logPath }
        if let level = r.string(f, "level", path) {
            if levels.contains(level.lowercased()) { c.level = level } else {
                r.problem(join(path, "level"), "\"\(level)\" is not one of Error, Warning, Info, Debug, Trace, Off")
            }
        }
        if let show = r.bool(f, "show_level", path) { c.showLevel = show }
        if let show = r.bool(f, "show_log_origin", path) { c.showLogOrigin = show }
        if let module = r.string(f, "module", path) { c.module = module }
        return c
    }

    var json: String {
        JSONText.object([("log_path", JSONText.string(logPath)), ("level", JSONText.string(level)),
                         ("show_level", JSONText.bool(showLevel)), ("show_log_origin", JSONText.bool(showLogOrigin)),
                         ("module", JSONText.string(module))])
    }
}

/// `metrics` (Firecracker's Metrics): where the metrics lines go.
public struct MetricsConfig: Equatable, Sendable {
    public var metricsPath: String
    public init(metricsPath: String) { self.metricsPath = metricsPath }

    static let keys: Set<String> = ["metrics_path"]

    static func read(_ r: ConfigReader, _ f: [String: JSONValue], _ path: String = "") -> MetricsConfig? {
        guard let p = r.string(f, "metrics_path", path) else {
            if f["metrics_path"] == nil { r.problem(join(path, "metrics_path"), "required") }
            return nil
        }
        return MetricsConfig(metricsPath: p)
    }

    var json: String { JSONText.object([("metrics_path", JSONText.string(metricsPath))]) }
}

func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
