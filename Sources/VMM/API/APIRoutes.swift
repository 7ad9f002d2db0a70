/// What the API answers: 200 with a JSON body, 204, or 400 with a fault.
public struct APIResponse: Equatable, Sendable {
    public let status: Int
    /// JSON text (for a fault: `{"fault_message": "..."}`).
    public let body: String?

    static let noContent = APIResponse(status: 204, body: nil)
    static func ok(_ json: String) -> APIResponse { APIResponse(status: 200, body: json) }
    static func fault(_ f: APIFault) -> APIResponse {
        APIResponse(status: 400, body: JSONText.object([("fault_message", JSONText.quote(f.message))]))
    }
}

/// Firecracker's endpoints (src/firecracker/swagger/firecracker.yaml): the same paths,
/// bodies, field names and status codes.
extension VMController {
    public func route(method: String, path: String, body: [UInt8]) -> APIResponse {
        do throws(APIFault) {
            return try dispatch(method, path.split(separator: "/", omittingEmptySubsequences: true).map(String.init), body)
        } catch {
            return .fault(error)
        }
    }

    private func dispatch(_ method: String, _ parts: [String], _ body: [UInt8]) throws(APIFault) -> APIResponse {
        if ["drives", "network-interfaces"].contains(parts.first ?? ""), parts.count == 2 { try Self.checkID(parts[1]) }
        if ["drives", "network-interfaces"].contains(parts.first ?? ""), parts.count == 1, method == "PUT" || method == "PATCH" {
            throw APIFault("The ID cannot be empty: \(method) /\(parts[0])/{id}")
        }
        switch (method, parts.first ?? "", parts.count) {
        case ("GET", "", 0):
            // Firecracker's InstanceInfo, as clients compare it (volt-vmm's own version: --version).
            return .ok(JSONText.object([("app_name", JSONText.quote("Firecracker")), ("id", JSONText.quote(instanceID)),
                                        ("state", JSONText.quote(stateName)), ("vmm_version", JSONText.quote(Self.firecrackerAPIVersion))]))
        case ("GET", "version", 1):
            return .ok(JSONText.object([("firecracker_version", JSONText.quote(Self.firecrackerAPIVersion))]))
        case ("GET", "vm", 2) where parts[1] == "config":
            return .ok(configuration.json)
        case ("GET", "machine-config", 1):
            return .ok(configuration.machine.json)
        case ("PUT", "machine-config", 1), ("PATCH", "machine-config", 1):
            let patch = method == "PATCH"
            if patch, (try? JSONValue.parse(body)) == .object([:]) { throw APIFault("Empty PATCH request.") }
            try configure("\(method) /machine-config") { (r: inout VMResources) throws(APIFault) in
                let base = r.machine
                r.machine = try parseBody(body, allowed: MachineConfiguration.keys) { MachineConfiguration.read($0, $1, base: patch ? base : nil) }
            }
            return .noContent
        case ("PUT", "boot-source", 1):
            let boot = try parseBody(body, allowed: BootSourceConfig.keys) { BootSourceConfig.read($0, $1) }
            try onMainThread("PUT /boot-source") { [kernelStore] in HostChecks.bootSource(boot, store: kernelStore) }
            try configure("PUT /boot-source") { $0.bootSource = boot }
            return .noContent
        case ("PUT", "drives", 2):
            let drive = try parseBody(body, allowed: DriveConfig.keys) { DriveConfig.read($0, $1, id: parts[1]) }
            try onMainThread("PUT /drives") { HostChecks.drive(drive) }
            try configure("PUT /drives") { (r: inout VMResources) throws(APIFault) in try r.put(drive: drive) }
            return .noContent
        case ("PATCH", "drives", 2):
            return try patchDrive(parts[1], body)
        case ("PUT", "network-interfaces", 2):
            let nic = try parseBody(body, allowed: NetworkInterfaceConfig.keys) { NetworkInterfaceConfig.read($0, $1, id: parts[1]) }
            try onMainThread("PUT /network-interfaces") { HostChecks.networkInterface(nic) }
            try configure("PUT /network-interfaces") { (r: inout VMResources) throws(APIFault) in try r.put(networkInterface: nic) }
            return .noContent
        case ("PATCH", "network-interfaces", 2):
            return try patchNetworkInterface(parts[1], body)
        case ("PUT", "entropy", 1):
            let entropy = try parseBody(body, allowed: EntropySpec.apiKeys) { EntropySpec.read($0, $1) }
            try configure("PUT /entropy") { $0.entropy = entropy }
            return .noContent
        case ("PUT", "logger", 1):
            // Firecracker's logger update: the fields given change, the others stay.
            let base = configuration.logger
            let logger = try parseBody(body, allowed: LoggerConfig.keys) { LoggerConfig.read($0, $1, base: base) }
            if let path = logger.logPath, path != base?.logPath {
                try onMainThread("PUT /logger") { HostChecks.output(path, field: "log_path") }
            }
            try configure("PUT /logger") { $0.logger = logger }
            return .noContent
        case ("PUT", "metrics", 1):
            let metrics = try parseBody(body, allowed: MetricsConfig.keys) { MetricsConfig.read($0, $1) }
            guard configuration.metrics == nil else {
                throw APIFault("Reinitialization of metrics not allowed: the metrics already go to \(configuration.metrics!.metricsPath)")
            }
            try onMainThread("PUT /metrics") { HostChecks.output(metrics.metricsPath, field: "metrics_path") }
            try configure("PUT /metrics") { $0.metrics = metrics }
            return .noContent
        case ("PUT", "actions", 1):
            return try action(body)
        case ("PATCH", "vm", 1):
            return try vmState(body)
        case ("PUT", "vsock", 1):
            throw APIFault("PUT /vsock: the vsock device is not available in this volt-vmm yet")
        case ("PUT", "snapshot", 2) where parts[1] == "create":
            return try snapshotCreate(body)
        case ("PUT", "snapshot", 2) where parts[1] == "load":
            let cwd = workingDirectory
            let load = try parseBody(body, allowed: SnapshotLoad.keys) { SnapshotLoad.read($0, $1, relativeTo: cwd) }
            try snapshotLoad(load)
            return .noContent
        case (_, "balloon", _), (_, "mmds", _), (_, "cpu-config", _), (_, "serial", _), (_, "hotplug", _), (_, "pmem", _):
            throw APIFault("\(method) /\(parts.joined(separator: "/")): volt-vmm has no \(parts[0]) support")
        default:
            throw APIFault("Invalid request method and/or path: \(method) /\(parts.joined(separator: "/")).")
        }
    }

    private func action(_ body: [UInt8]) throws(APIFault) -> APIResponse {
        let type = try parseBody(body, allowed: ["action_type"]) { r, f in
            let t = r.string(f, "action_type", "")
            if f["action_type"] == nil { r.problem("action_type", "required") }
            return t
        }
        switch type {
        case "InstanceStart":
            try instanceStart()
        case "SendCtrlAltDel":
            let control = try running("SendCtrlAltDel")
            do { try control.sendCtrlAltDel() } catch { throw APIFault("SendCtrlAltDel: \(error)") }
        case "FlushMetrics":
            try running("FlushMetrics").flushMetrics()
        default:
            throw APIFault("action_type \"\(type)\" is not one of InstanceStart, SendCtrlAltDel, FlushMetrics")
        }
        return .noContent
    }

    /// Firecracker's CreateSnapshotParams on a paused VM: a full snapshot only.
    private func snapshotCreate(_ body: [UInt8]) throws(APIFault) -> APIResponse {
        let cwd = workingDirectory
        let paths = try parseBody(body, allowed: ["snapshot_type", "snapshot_path", "mem_file_path", "version"]) { r, f -> (String, String)? in
            if let type = r.string(f, "snapshot_type", ""), type != "Full" {
                r.problem("snapshot_type", "\"\(type)\": only Full snapshots are supported")
            }
            _ = r.string(f, "version", "")   // Firecracker's deprecated target version: one format here
            for key in ["snapshot_path", "mem_file_path"] where f[key] == nil { r.problem(key, "required") }
            guard let state = r.string(f, "snapshot_path", ""), let memory = r.string(f, "mem_file_path", "") else { return nil }
            return (absolute(state, cwd), absolute(memory, cwd))
        }
        let control = try running("PUT /snapshot/create")
        do { _ = try control.snapshot(statePath: paths.0, memoryPath: paths.1) } catch { throw APIFault("PUT /snapshot/create: \(error)") }
        return .noContent
    }

    /// Firecracker's checked_id: drive and interface ids are 1 to 64 of [A-Za-z0-9_]. The
    /// path is taken as written (not percent-decoded), so an encoded id is refused too.
    static func checkID(_ id: String) throws(APIFault) {
        guard !id.isEmpty, id.utf8.count <= 64,
              id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x5f }) else {
            throw APIFault("API Resource IDs can only contain alphanumeric characters and underscores (1 to 64 of them): \(JSONText.quote(String(id.prefix(80))))")
        }
    }

    private func vmState(_ body: [UInt8]) throws(APIFault) -> APIResponse {
        let wanted = try parseBody(body, allowed: ["state"]) { r, f in
            let s = r.string(f, "state", "")
            if f["state"] == nil { r.problem("state", "required") }
            return s
        }
        let control = try running("PATCH /vm")
        do {
            switch wanted {
            case "Paused": try control.pause()
            case "Resumed": try control.resume()
            default: throw APIFault("state \"\(wanted)\" is not Paused or Resumed")
            }
        } catch let error as MachineControlError {
            throw APIFault("PATCH /vm \(wanted): \(error)")
        } catch let error as APIFault {
            throw error
        } catch {
            throw APIFault("PATCH /vm \(wanted): \(error)")
        }
        return .noContent
    }

    /// Post-boot only, as in Firecracker. A new `path_on_host` would need a file opened
    /// after volt-vmm's lock-down: refused.
    private func patchDrive(_ id: String, _ body: [UInt8]) throws(APIFault) -> APIResponse {
        let patch = try parseBody(body, allowed: DriveConfig.patchKeys) { r, f -> (path: String?, limited: Bool)? in
            if let given = r.string(f, "drive_id", ""), given != id { r.problem("drive_id", "The id from the path does not match the id from the body! (\"\(id)\" and \"\(given)\")") }
            let limited = RateLimiterConfig.read(r, f["rate_limiter"], "rate_limiter")?.isLimited ?? false
            return (r.string(f, "path_on_host", ""), limited)
        }
        _ = try running("PATCH /drives")
        guard configuration.drives.contains(where: { $0.id == id }) else { throw APIFault("no drive \"\(id)\": PUT /drives/\(id) before start") }
        if patch.path != nil {
            throw APIFault("PATCH /drives/\(id) path_on_host: volt-vmm opens no file after the VM starts (its lock-down); give the drive its image before InstanceStart")
        }
        if patch.limited { throw APIFault("PATCH /drives/\(id): drive rate limits are not supported") }
        return .noContent
    }

    private func patchNetworkInterface(_ id: String, _ body: [UInt8]) throws(APIFault) -> APIResponse {
        let limited = try parseBody(body, allowed: NetworkInterfaceConfig.patchKeys) { r, f -> Bool? in
            if let given = r.string(f, "iface_id", ""), given != id { r.problem("iface_id", "The id from the path does not match the id from the body! (\"\(id)\" and \"\(given)\")") }
            return ["rx_rate_limiter", "tx_rate_limiter"].contains { RateLimiterConfig.read(r, f[$0], $0)?.isLimited == true }
        }
        _ = try running("PATCH /network-interfaces")
        guard configuration.networkInterfaces.contains(where: { $0.id == id }) else {
            throw APIFault("no network interface \"\(id)\": PUT /network-interfaces/\(id) before start")
        }
        if limited { throw APIFault("PATCH /network-interfaces/\(id): NIC rate limits are not supported") }
        return .noContent
    }
}
