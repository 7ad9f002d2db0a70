import Foundation
import Testing
import VoltTestSupport
@testable import VMM

/// Firecracker's endpoints on the controller, without a socket or a VM: paths, bodies,
/// field names, status codes, and the rules before start.
@Suite struct APIRoutesTests {
    /// Files the PUTs name (their checks open them), and a thread playing volt-vmm's main
    /// thread, which runs those checks while it waits for InstanceStart.
    final class Fixture {
        let dir: URL
        let controller: VMController
        init() throws {
            dir = try makeTemporaryDirectory("api-routes")
            for name in ["vmlinux", "initrd", "root.img", "data.img", "other.img"] {
                try Data(count: 4096).write(to: dir.appendingPathComponent(name))
            }
            let controller = VMController(resources: VMResources(), instanceID: "api-test")
            self.controller = controller
            Thread { _ = controller.waitForStart() }.start()
        }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        deinit {
            controller.terminate(signal: SIGTERM)
            try? FileManager.default.removeItem(at: dir)
        }
    }

    func call(_ c: VMController, _ method: String, _ path: String, _ body: String = "") -> APIResponse {
        c.route(method: method, path: path, body: Array(body.utf8))
    }

    /// The JSON object of a response body.
    func object(_ r: APIResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data((r.body ?? "").utf8)) as? [String: Any], "\(r)")
    }

    func fault(_ r: APIResponse) throws -> String {
        #expect(r.status == 400, "\(r)")
        return try #require(try object(r)["fault_message"] as? String)
    }

    @Test func infoAndVersion() throws {
        let f = try Fixture()
        let c = f.controller
        let info = call(c, "GET", "/")
        #expect(info.status == 200)
        let o = try object(info)
        #expect(o["state"] as? String == "Not started" && o["id"] as? String == "api-test")
        #expect(o["app_name"] as? String == "Firecracker" && o["vmm_version"] as? String == VMController.firecrackerAPIVersion, "Firecracker's InstanceInfo: \(o)")
        #expect(try object(call(c, "GET", "/version"))["firecracker_version"] as? String == VMController.firecrackerAPIVersion)
    }

    @Test func configurationBeforeStartRoundTrips() throws {
        let f = try Fixture()
        let c = f.controller
        #expect(call(c, "PUT", "/boot-source", #"{"kernel_image_path": "\#(f.path("vmlinux"))", "boot_args": "console=ttyS0", "initrd_path": "\#(f.path("initrd"))"}"#).status == 204)
        #expect(call(c, "PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 512}"#).status == 204)
        #expect(call(c, "PATCH", "/machine-config", #"{"mem_size_mib": 256}"#).status == 204)
        #expect(call(c, "PUT", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(f.path("root.img"))", "is_root_device": true, "is_read_only": false}"#).status == 204)
        #expect(call(c, "PUT", "/drives/data", #"{"drive_id": "data", "path_on_host": "\#(f.path("data.img"))", "is_root_device": false, "is_read_only": true, "cache_type": "Writeback", "partuuid": null}"#).status == 204, "null is an absent optional field")
        #expect(call(c, "PUT", "/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "lo", "guest_mac": "52:54:00:12:34:56"}"#).status == 204)
        #expect(call(c, "PUT", "/entropy", #"{"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}"#).status == 204)
        #expect(call(c, "PUT", "/metrics", #"{"metrics_path": "\#(f.path("metrics.fifo"))"}"#).status == 204)
        #expect(FileManager.default.fileExists(atPath: f.path("metrics.fifo")), "created at PUT time, as Firecracker does")
        #expect(try fault(call(c, "PUT", "/metrics", #"{"metrics_path": "\#(f.path("again"))"}"#)).contains("Reinitialization of metrics not allowed"))
        #expect(call(c, "PUT", "/logger", #"{"level": "Debug", "show_level": true}"#).status == 204)
        #expect(call(c, "PUT", "/logger", #"{"show_log_origin": true}"#).status == 204)
        #expect(c.configuration.logger?.level == "Debug" && c.configuration.logger?.showLevel == true && c.configuration.logger?.showLogOrigin == true,
                "a logger PUT changes only the fields it names")
        let machine = try object(call(c, "GET", "/machine-config"))
        #expect(machine["vcpu_count"] as? Int == 2 && machine["mem_size_mib"] as? Int == 256, "PATCH keeps vcpu_count")
        let config = try object(call(c, "GET", "/vm/config"))
        #expect((config["boot-source"] as? [String: Any])?["kernel_image_path"] as? String == f.path("vmlinux"))
        let drives = try #require(config["drives"] as? [[String: Any]])
        #expect(drives.map { $0["drive_id"] as? String } == ["rootfs", "data"])
        #expect(drives[1]["is_read_only"] as? Bool == true && drives[1]["cache_type"] as? String == "Writeback")
        #expect((config["network-interfaces"] as? [[String: Any]])?.first?["guest_mac"] as? String == "52:54:00:12:34:56")
        let limit = ((config["entropy"] as? [String: Any])?["rate_limiter"] as? [String: Any])?["bandwidth"] as? [String: Any]
        #expect(limit?["size"] as? Int == 1000 && limit?["refill_time"] as? Int == 100)
        #expect((config["metrics"] as? [String: Any])?["metrics_path"] as? String == f.path("metrics.fifo"))
        // What GET /vm/config writes is a config file that builds the same VM (nulls and all).
        let reread = try FirecrackerConfigFile.parse(Array((call(c, "GET", "/vm/config").body ?? "").utf8), file: "vm-config.json")
        #expect(reread == c.configuration, "\(reread)")
        // A PUT replaces the drive of that id.
        #expect(call(c, "PUT", "/drives/data", #"{"drive_id": "data", "path_on_host": "\#(f.path("other.img"))", "is_root_device": false}"#).status == 204)
        #expect(c.configuration.drives.count == 2)
    }

    /// What a PUT checks on the host at once (Firecracker does too): a 400 naming the path.
    @Test func missingFilesAndDevicesAreRefusedAtPUT() throws {
        let f = try Fixture()
        let c = f.controller
        let missing = f.path("missing")
        for (path, body, words) in [
            ("/boot-source", #"{"kernel_image_path": "\#(missing)"}"#, "kernel_image_path"),
            ("/boot-source", #"{"kernel_image_path": "\#(f.path("vmlinux"))", "initrd_path": "\#(missing)"}"#, "initrd_path \(missing)"),
            ("/drives/d", #"{"drive_id": "d", "path_on_host": "\#(missing)", "is_root_device": false}"#, "path_on_host \(missing)"),
            ("/drives/d", #"{"drive_id": "d", "socket": "\#(f.path("vmlinux"))", "is_root_device": false}"#, "not a Unix socket"),
            ("/network-interfaces/n", #"{"iface_id": "n", "host_dev_name": "volt-no-such0"}"#, "no such network device"),
            ("/logger", #"{"log_path": "\#(missing)/sub/log"}"#, "log_path"),
            ("/metrics", #"{"metrics_path": "\#(missing)/sub/m"}"#, "metrics_path"),
        ] {
            let text = try fault(call(c, "PUT", path, body))
            #expect(text.contains(words), "PUT \(path): \(text)")
        }
        #expect(c.configuration == VMResources(), "nothing refused was kept")
    }

    @Test func idsAreFirecrackersAndDevicesAreBounded() throws {
        let f = try Fixture()
        let c = f.controller
        for id in ["a-b", "a.b", "%41", String(repeating: "a", count: 65)] {
            #expect(try fault(call(c, "PUT", "/drives/\(id)", #"{"drive_id": "\#(id)", "path_on_host": "\#(f.path("data.img"))", "is_root_device": false}"#))
                .contains("alphanumeric characters and underscores"), "\(id)")
        }
        #expect(try fault(call(c, "PUT", "/drives", "{}")).contains("The ID cannot be empty"))
        #expect(try fault(call(c, "PATCH", "/machine-config", "{}")) == "Empty PATCH request.")
        for i in 0..<11 {
            #expect(call(c, "PUT", "/drives/d\(i)", #"{"drive_id": "d\#(i)", "path_on_host": "\#(f.path("data.img"))", "is_root_device": false}"#).status == 204)
        }
        #expect(try fault(call(c, "PUT", "/drives/d11", #"{"drive_id": "d11", "path_on_host": "\#(f.path("data.img"))", "is_root_device": false}"#)).contains("room for 11"))
        #expect(call(c, "PUT", "/drives/d3", #"{"drive_id": "d3", "path_on_host": "\#(f.path("other.img"))", "is_root_device": false}"#).status == 204, "replacing one still fits")
    }

    @Test func theMachineConfigBuildsTheVM() throws {
        let f = try Fixture()
        let kernel = f.path("vmlinux")
        let c = f.controller
        _ = call(c, "PUT", "/boot-source", #"{"kernel_image_path": "\#(kernel)", "boot_args": "console=ttyS0"}"#)
        #expect(call(c, "PUT", "/drives/data", #"{"drive_id": "data", "path_on_host": "\#(f.path("data.img"))", "is_root_device": false}"#).status == 204)
        #expect(call(c, "PUT", "/drives/root", #"{"drive_id": "root", "path_on_host": "\#(f.path("root.img"))", "is_root_device": true, "is_read_only": true}"#).status == 204)
        _ = call(c, "PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 64}"#)
        let m = try c.configuration.machineConfig(vmID: VMID(), defaultCmdline: "x")
        #expect(m.cmdline == "console=ttyS0 root=/dev/vda ro", "the root drive is vda, read-only")
        #expect(m.devices.map(\.kind) == ["disk", "disk"])
        if case let .disk(first) = m.devices[0] { #expect(first.path == f.path("root.img")) } else { Issue.record("root first") }
        #expect(m.memoryBytes == 64 << 20 && m.vcpus == 2 && m.kernelPath == kernel)
    }

    @Test(arguments: [
        ("PUT", "/boot-source", #"{"boot_args": "x"}"#, "kernel_image_path: required"),
        ("PUT", "/boot-source", #"{"kernel_image_path": "/k", "extra": 1}"#, "extra: unknown key"),
        ("PUT", "/boot-source", "not json", "not valid JSON"),
        ("PUT", "/boot-source", "", "not valid JSON"),
        ("PUT", "/machine-config", #"{"vcpu_count": 0, "mem_size_mib": 128}"#, "vcpu_count: 0 is out of range"),
        ("PUT", "/machine-config", #"{"vcpu_count": 1}"#, "mem_size_mib: required"),
        ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 128, "smt": true}"#, "smt"),
        ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"}"#, "CPU templates"),
        ("PUT", "/drives/a", #"{"drive_id": "b", "path_on_host": "/x", "is_root_device": false}"#, "The id from the path does not match the id from the body!"),
        ("PUT", "/drives/a", #"{"drive_id": "a", "is_root_device": false}"#, "path_on_host: required"),
        ("PUT", "/drives/a", #"{"drive_id": "a", "path_on_host": "/x"}"#, "is_root_device: required"),
        ("PUT", "/drives/a", #"{"drive_id": "a", "path_on_host": "/x", "is_root_device": false, "rate_limiter": {"ops": {"size": 5, "refill_time": 10}}}"#, "rate limits are not supported"),
        ("PUT", "/drives/a", #"{"drive_id": "a", "path_on_host": "/x", "is_root_device": false, "cache_type": "Fast"}"#, "cache_type"),
        ("PUT", "/network-interfaces/e", #"{"iface_id": "e"}"#, "host_dev_name: required"),
        ("PUT", "/network-interfaces/e", #"{"iface_id": "e", "host_dev_name": "tap0", "guest_mac": "zz"}"#, "MAC"),
        ("PUT", "/actions", #"{"action_type": "Reboot"}"#, "not one of InstanceStart"),
        ("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#, "needs a started microVM"),
        ("PUT", "/actions", #"{"action_type": "InstanceStart"}"#, "needs a boot source"),
        ("PATCH", "/vm", #"{"state": "Paused"}"#, "needs a started microVM"),
        ("PATCH", "/drives/a", #"{"drive_id": "a", "path_on_host": "/y"}"#, "needs a started microVM"),
        ("GET", "/nothing", "", "Invalid request method and/or path: GET /nothing."),
        ("DELETE", "/drives/a", "", "Invalid request method and/or path"),
        ("PUT", "/balloon", #"{"amount_mib": 1, "deflate_on_oom": true}"#, "no balloon support"),
        ("PUT", "/snapshot/create", #"{"snapshot_path": "s", "mem_file_path": "m"}"#, "needs a started microVM"),
        ("PUT", "/snapshot/create", #"{"snapshot_path": "s"}"#, "mem_file_path: required"),
        ("PUT", "/snapshot/load", #"{"snapshot_path": "s", "mem_backend": {"backend_type": "Uffd", "backend_path": "u"}}"#, "only File"),
        ("PUT", "/snapshot/load", #"{"snapshot_path": "s", "mem_file_path": "m", "enable_diff_snapshots": true}"#, "full snapshots only"),
    ])
    func badRequestsAreFaultsNamingTheProblem(_ method: String, _ path: String, _ body: String, _ message: String) throws {
        let f = try Fixture()
        let text = try fault(call(f.controller, method, path, body))
        #expect(text.contains(message), "\(method) \(path): \(text)")
    }

    @Test func onlyOneRootDeviceAndNoSharedTap() throws {
        let f = try Fixture()
        let c = f.controller
        #expect(call(c, "PUT", "/drives/a", #"{"drive_id": "a", "path_on_host": "\#(f.path("root.img"))", "is_root_device": true}"#).status == 204)
        #expect(try fault(call(c, "PUT", "/drives/b", #"{"drive_id": "b", "path_on_host": "\#(f.path("data.img"))", "is_root_device": true}"#)).contains("already the root device"))
        #expect(call(c, "PUT", "/network-interfaces/e0", #"{"iface_id": "e0", "host_dev_name": "lo"}"#).status == 204)
        #expect(try fault(call(c, "PUT", "/network-interfaces/e1", #"{"iface_id": "e1", "host_dev_name": "lo"}"#)).contains("already used"))
    }
}

/// `--config-file` in Firecracker's format.
@Suite struct FirecrackerConfigFileTests {
    @Test func aFirecrackerConfigBecomesResources() throws {
        let json = #"""
        {"boot-source": {"kernel_image_path": "vmlinux", "boot_args": "console=ttyS0 reboot=k"},
         "drives": [{"drive_id": "rootfs", "path_on_host": "root.img", "is_root_device": true, "is_read_only": false}],
         "network-interfaces": [{"iface_id": "eth0", "guest_mac": "02:00:00:00:00:01", "host_dev_name": "tap0"}],
         "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": false},
         "entropy": {"rate_limiter": null}, "logger": {"level": "Info", "log_path": "/tmp/fc.log"},
         "metrics": {"metrics_path": "/tmp/fc.metrics"}, "balloon": null, "mmds-config": null}
        """#
        let r = try FirecrackerConfigFile.parse(Array(json.utf8), file: "vm.json")
        #expect(r.bootSource?.kernelImagePath == "vmlinux" && r.machine.vcpuCount == 2 && r.machine.memSizeMiB == 256)
        #expect(r.drives.first?.isRootDevice == true && r.networkInterfaces.first?.spec.tap == "tap0")
        #expect(r.entropy == EntropySpec() && r.logger?.logPath == "/tmp/fc.log" && r.metrics?.metricsPath == "/tmp/fc.metrics")
    }

    @Test func everyBadFieldIsNamedWithItsPath() {
        let json = #"{"boot-source": {"kernel_image_path": 5}, "drives": [{"drive_id": "d", "is_root_device": "yes"}], "machine-config": {"vcpu_count": 99, "mem_size_mib": 128}, "colour": "blue", "vsock": {"guest_cid": 3, "uds_path": "/v"}}"#
        do {
            _ = try FirecrackerConfigFile.parse(Array(json.utf8), file: "vm.json")
            Issue.record("accepted")
        } catch let problems as ConfigProblems {
            let text = problems.description
            for path in ["boot-source.kernel_image_path", "drives[0].is_root_device", "drives[0].path_on_host", "machine-config.vcpu_count", "colour", "vsock"] {
                #expect(text.contains(path), "\(path) missing from: \(text)")
            }
        } catch {
            Issue.record("\(error)")
        }
    }
}
