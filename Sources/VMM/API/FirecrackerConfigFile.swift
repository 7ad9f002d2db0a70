/// Firecracker's `--config-file` (the same resources as its API, under its keys:
/// `boot-source`, `drives`, `network-interfaces`, `machine-config`, `entropy`, `logger`,
/// `metrics`, ...). Read strictly: an unknown key or a bad field is an error naming its
/// JSON path, every problem at once.
public enum FirecrackerConfigFile {
    static let keys: Set<String> = ["boot-source", "drives", "network-interfaces", "machine-config", "vsock", "entropy",
                                    "logger", "metrics", "balloon", "mmds-config", "cpu-config"]

    public static func load(path: String) throws -> VMResources {
        try parse(try VMConfigFile.read(path: path), file: path)
    }

    static func parse(_ bytes: [UInt8], file: String) throws -> VMResources {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch { throw ConfigError.configNotJSON(file: file, reason: "\(error)") }
        let r = ConfigReader()
        guard let top = r.object(root, "", allowed: keys) else { throw ConfigProblems(file: file, problems: r.problems) }
        var resources = VMResources()
        func section(_ key: String, _ allowed: Set<String>) -> [String: JSONValue]? {
            guard let value = top[key], value != .null else { return nil }
            return r.object(value, key, allowed: allowed)
        }
        if let f = section("boot-source", BootSourceConfig.keys) { resources.bootSource = BootSourceConfig.read(r, f, "boot-source") }
        if let f = section("machine-config", MachineConfiguration.keys),
           let m = MachineConfiguration.read(r, f, base: nil, "machine-config") { resources.machine = m }
        for (i, item) in r.array(top, "drives", "").enumerated() {
            let path = "drives[\(i)]"
            guard let f = r.object(item, path, allowed: DriveConfig.keys), let d = DriveConfig.read(r, f, id: nil, path) else { continue }
            do { try resources.put(drive: d) } catch { r.problem(path, error.message) }
        }
        for (i, item) in r.array(top, "network-interfaces", "").enumerated() {
            let path = "network-interfaces[\(i)]"
            guard let f = r.object(item, path, allowed: NetworkInterfaceConfig.keys),
                  let n = NetworkInterfaceConfig.read(r, f, id: nil, path) else { continue }
            do { try resources.put(networkInterface: n) } catch { r.problem(path, error.message) }
        }
        if let f = section("entropy", EntropySpec.apiKeys) { resources.entropy = EntropySpec.read(r, f, "entropy") }
        if let f = section("logger", LoggerConfig.keys) { resources.logger = LoggerConfig.read(r, f, "logger") }
        if let f = section("metrics", MetricsConfig.keys) { resources.metrics = MetricsConfig.read(r, f, "metrics") }
        for key in ["vsock", "balloon", "mmds-config", "cpu-config"] where top[key] != nil && top[key] != .null {
            r.problem(key, "not supported by this volt-vmm (leave it out)")
        }
        if resources.bootSource == nil && top["boot-source"] == nil { r.problem("boot-source", "required") }
        guard r.problems.isEmpty else { throw ConfigProblems(file: file, problems: r.problems) }
        return resources
    }
}
