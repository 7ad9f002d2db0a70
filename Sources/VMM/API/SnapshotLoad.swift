/// A snapshot to load (PUT /snapshot/load, `run --restore`): its files, whether the VM
/// runs at once, and host resources renamed for this copy.
public struct SnapshotLoad: Equatable, Sendable {
    public var statePath: String
    public var memoryPath: String
    public var resume: Bool
    /// Device name or API id (disk0, net1, rootfs, eth0) -> a disk image path or TAP name.
    public var overrides: [String: String]

    public init(statePath: String, memoryPath: String, resume: Bool, overrides: [String: String] = [:]) {
        self.statePath = statePath; self.memoryPath = memoryPath; self.resume = resume; self.overrides = overrides
    }

    static let keys: Set<String> = ["snapshot_path", "mem_file_path", "mem_backend", "enable_diff_snapshots",
                                    "track_dirty_pages", "resume_vm", "network_overrides", "drive_overrides"]

    /// Firecracker's LoadSnapshotParams; `drive_overrides` is volt-vmm's own (a clone's
    /// disk copy), beside Firecracker's `network_overrides`.
    static func read(_ r: ConfigReader, _ f: [String: JSONValue], relativeTo cwd: String) -> SnapshotLoad? {
        let state = r.string(f, "snapshot_path", "")
        if f["snapshot_path"] == nil { r.problem("snapshot_path", "required") }
        var memory = r.string(f, "mem_file_path", "")
        if let backend = f["mem_backend"], let b = r.object(backend, "mem_backend", allowed: ["backend_type", "backend_path"]) {
            let type = r.string(b, "backend_type", "mem_backend")
            if type != "File" {
                r.problem("mem_backend.backend_type", "\"\(type ?? "")\": only File is supported (no userfaultfd back-end)")
            }
            if memory != nil { r.problem("mem_backend", "give mem_backend or mem_file_path, not both") }
            memory = r.string(b, "backend_path", "mem_backend")
            if b["backend_path"] == nil { r.problem("mem_backend.backend_path", "required") }
        }
        if memory == nil && f["mem_backend"] == nil { r.problem("mem_file_path", "required (or mem_backend)") }
        for key in ["enable_diff_snapshots", "track_dirty_pages"] where r.bool(f, key, "") == true {
            r.problem(key, "true is not supported: volt-vmm takes full snapshots only")
        }
        var overrides: [String: String] = [:]
        for (key, idKey, valueKey) in [("network_overrides", "iface_id", "host_dev_name"), ("drive_overrides", "drive_id", "path_on_host")] {
            for (i, item) in r.array(f, key, "").enumerated() {
                let path = "\(key)[\(i)]"
                guard let o = r.object(item, path, allowed: [idKey, valueKey]) else { continue }
                guard let id = r.string(o, idKey, path), let value = r.string(o, valueKey, path) else {
                    r.problem(path, "needs \(idKey) and \(valueKey)")
                    continue
                }
                overrides[id] = valueKey == "path_on_host" ? absolute(value, cwd) : value
            }
        }
        guard let state, let memory else { return nil }
        return SnapshotLoad(statePath: absolute(state, cwd), memoryPath: absolute(memory, cwd),
                            resume: r.bool(f, "resume_vm", "") ?? false, overrides: overrides)
    }
}

/// A path as Firecracker takes it: relative ones against volt-vmm's working directory.
func absolute(_ path: String, _ cwd: String) -> String {
    path.hasPrefix("/") ? path : (cwd.hasSuffix("/") ? cwd : cwd + "/") + path
}
