import CShim
import Glibc
import Logging
import SystemPackage

/// In-kernel vhost-net (`--net ...,vhost=on`), probed only: volt-vmm opens /dev/vhost-net,
/// claims it (VHOST_SET_OWNER) and reads its features (VHOST_GET_FEATURES). The data path
/// (SET_MEM_TABLE, SET_VRING_*, NET_SET_BACKEND with the TAP) is not wired into the
/// virtio-mmio transport yet, so every NIC is still served by volt-net-worker; the probe
/// tells the operator which of the two reasons applies.
final class VhostNetDevice {
    static let defaultPath = "/dev/vhost-net"

    let fd: FileDescriptor
    let features: UInt64

    /// Opens and claims the device; the error text says which step failed and why.
    init(path: String = defaultPath) throws(VhostNetProbeError) {
        let raw = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard raw >= 0 else { throw .open(path: path, Errno(rawValue: errno)) }
        fd = FileDescriptor(rawValue: raw)
        var r = volt_ioctl(raw, VOLT_VHOST_SET_OWNER, nil)
        guard r >= 0 else {
            try? fd.close()
            throw .ioctl(path: path, request: "VHOST_SET_OWNER", Errno(rawValue: -r))
        }
        var bits: UInt64 = 0
        r = volt_ioctl(raw, VOLT_VHOST_GET_FEATURES, &bits)
        guard r >= 0 else {
            try? fd.close()
            throw .ioctl(path: path, request: "VHOST_GET_FEATURES", Errno(rawValue: -r))
        }
        features = bits
    }

    deinit { try? fd.close() }

    /// Probes vhost-net for NIC `name` and logs why the userspace worker serves it.
    static func probe(for name: String, path: String = defaultPath, logger: Logger) {
        do {
            let device = try VhostNetDevice(path: path)
            logger.notice("\(name): vhost=on: \(path) is usable (features 0x\(String(device.features, radix: 16))), but in-kernel vhost-net is not wired into the virtio-mmio transport yet — using volt-net-worker")
        } catch {
            logger.notice("\(name): vhost=on: \(error) — using volt-net-worker")
        }
    }
}

enum VhostNetProbeError: Error, CustomStringConvertible {
    case open(path: String, Errno)
    case ioctl(path: String, request: String, Errno)

    var description: String {
        switch self {
        case let .open(path, .noSuchFileOrDirectory):
            return "cannot open \(path): no such device (this kernel lacks CONFIG_VHOST_NET, or modprobe vhost_net)"
        case let .open(path, errno):
            return "cannot open \(path): \(errno)"
        case let .ioctl(path, request, errno):
            return "\(request) on \(path) failed: \(errno)"
        }
    }
}
