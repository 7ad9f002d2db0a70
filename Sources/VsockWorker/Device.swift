import IPC
import VirtioCore
import WorkerCore

/// What the device was started with (from `VsockArguments` and the opened listener).
struct VsockConfig {
    var guestCID: UInt64
    /// The socket listening on `uds_path` for host peers.
    var listenFD: CInt
    /// `<uds_path>` as the worker reaches it: the full path, or, jailed in the
    /// directory's bind mount, "/<name>". A guest's port P is `<prefix>_P`.
    var connectPrefix: String
    var connectTimeoutMs: Int = 2000
    var transportReset = false
    var queueSize = 256

    var connectTimeoutNs: UInt64 { UInt64(connectTimeoutMs) * 1_000_000 }
    func connectPath(port: UInt32) -> String { "\(connectPrefix)_\(port)" }
}

/// virtio-vsock (virtio 1.2, 5.10): RX, TX and event queues on one thread, config space
/// = the guest's CID. QEMU's vhost-user-vsock drives RX and TX only (it keeps the
/// event queue itself); volt-vmm gives the worker all three.
final class VsockDevice: BackendDevice {
    static let featureStream: UInt64 = 1 << 0

    let config: VsockConfig
    let handler: VsockQueueHandler

    init(config: VsockConfig, faults: [FaultSpec]) {
        self.config = config
        handler = VsockQueueHandler(config: config, faults: FaultInjector(faults))
    }

    var features: UInt64 {
        VirtioFeature.version1 | VirtioFeature.indirectDescriptors | VirtioFeature.eventIdx | Self.featureStream
    }
    var queueCount: Int { 3 }
    var maxQueueSize: Int { config.queueSize }
    var threadLayout: [[Int]] { [[0, 1, 2]] }
    var counterNames: [String] { VsockCounter.names }
    func threadName(_ index: Int) -> String { "vsock" }

    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler { handler }

    /// struct virtio_vsock_config: le64 guest_cid, then nothing.
    func config(offset: UInt32, size: UInt32) throws -> [UInt8] {
        guard UInt64(offset) + UInt64(size) <= UInt64(VhostUser.maxConfigSize) else {
            throw WorkerError.usage("config read past 256 bytes (read inside the config space)")
        }
        let cid = (0..<8).map { UInt8(truncatingIfNeeded: config.guestCID >> (8 * UInt64($0))) }
        return (Int(offset)..<Int(offset + size)).map { $0 < cid.count ? cid[$0] : 0 }
    }

    /// The config space is read-only for the driver.
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws {}
}
