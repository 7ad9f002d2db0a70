import CShim
import Glibc
import SystemPackage

/// The in-kernel vhost API as volt-vmm uses it: one vhost-net device serving one queue pair.
/// A protocol so the request sequence can be tested on hosts without /dev/vhost-net.
protocol VhostKernelDevice: AnyObject, Sendable {
    /// The virtio feature bits the kernel device offers (VHOST_GET_FEATURES).
    var features: UInt64 { get }
    /// The device's fd, for the vCPU threads' seccomp filter (nil: no fd, a test double).
    var fileDescriptor: Int32? { get }
    func setFeatures(_ features: UInt64) throws
    /// (guest physical address, size, volt-vmm's virtual address) per RAM region.
    func setMemoryTable(_ regions: [(guest: UInt64, size: UInt64, user: UInt64)]) throws
    func setVringNum(_ index: Int, _ size: UInt16) throws
    func setVringAddr(_ index: Int, descriptors: UInt64, used: UInt64, available: UInt64) throws
    func setVringBase(_ index: Int, _ base: UInt16) throws
    func getVringBase(_ index: Int) throws -> UInt16
    func setVringKick(_ index: Int, eventFD: Int32) throws
    func setVringCall(_ index: Int, eventFD: Int32) throws
    /// VHOST_NET_SET_BACKEND: ring `index` serves `tapFD` (-1 detaches it).
    func setBackend(_ index: Int, tapFD: Int32) throws
}

/// /dev/vhost-net, opened and claimed (VHOST_SET_OWNER).
final class VhostNetDevice: VhostKernelDevice, @unchecked Sendable {
    // @unchecked: only the fd, used by one thread at a time (the transport's).
    static let defaultPath = "/dev/vhost-net"

    let path: String
    let fd: FileDescriptor
    let features: UInt64

    /// Opens and claims the device; the error says which step failed and why.
    init(path: String = defaultPath) throws(VhostNetError) {
        self.path = path
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

    var fileDescriptor: Int32? { fd.rawValue }

    private func check(_ request: String, _ r: Int32) throws(VhostNetError) {
        if r < 0 { throw .ioctl(path: path, request: request, Errno(rawValue: -r)) }
    }

    func setFeatures(_ features: UInt64) throws { try check("VHOST_SET_FEATURES", volt_vhost_set_features(fd.rawValue, features)) }

    func setMemoryTable(_ regions: [(guest: UInt64, size: UInt64, user: UInt64)]) throws {
        try check("VHOST_SET_MEM_TABLE", volt_vhost_set_mem_table(fd.rawValue, regions.map(\.guest), regions.map(\.size),
                                                                 regions.map(\.user), UInt32(regions.count)))
    }

    func setVringNum(_ index: Int, _ size: UInt16) throws {
        try check("VHOST_SET_VRING_NUM", volt_vhost_set_vring_num(fd.rawValue, UInt32(index), UInt32(size)))
    }

    func setVringAddr(_ index: Int, descriptors: UInt64, used: UInt64, available: UInt64) throws {
        try check("VHOST_SET_VRING_ADDR", volt_vhost_set_vring_addr(fd.rawValue, UInt32(index), descriptors, used, available))
    }

    func setVringBase(_ index: Int, _ base: UInt16) throws {
        try check("VHOST_SET_VRING_BASE", volt_vhost_set_vring_base(fd.rawValue, UInt32(index), UInt32(base)))
    }

    func getVringBase(_ index: Int) throws -> UInt16 {
        let r = volt_vhost_get_vring_base(fd.rawValue, UInt32(index))
        try check("VHOST_GET_VRING_BASE", r)
        return UInt16(truncatingIfNeeded: r)
    }

    func setVringKick(_ index: Int, eventFD: Int32) throws {
        try check("VHOST_SET_VRING_KICK", volt_vhost_set_vring_kick(fd.rawValue, UInt32(index), eventFD))
    }

    func setVringCall(_ index: Int, eventFD: Int32) throws {
        try check("VHOST_SET_VRING_CALL", volt_vhost_set_vring_call(fd.rawValue, UInt32(index), eventFD))
    }

    func setBackend(_ index: Int, tapFD: Int32) throws {
        try check("VHOST_NET_SET_BACKEND", volt_vhost_net_set_backend(fd.rawValue, UInt32(index), tapFD))
    }
}

enum VhostNetError: Error, CustomStringConvertible {
    case open(path: String, Errno)
    case ioctl(path: String, request: String, Errno)
    case unsupported(String)
    /// TUNSETOFFLOAD refused what the driver acked (at DRIVER_OK).
    case offloadRefused(device: String, offload: UInt32)

    var description: String {
        switch self {
        case let .open(path, .noSuchFileOrDirectory):
            return "cannot open \(path): no such device (this kernel lacks CONFIG_VHOST_NET, or modprobe vhost_net)"
        case let .open(path, errno):
            return "cannot open \(path): \(errno)"
        case let .ioctl(path, request, errno):
            return "\(request) on \(path) failed: \(errno)"
        case let .unsupported(why):
            return why
        case let .offloadRefused(device, offload):
            return "\(device): the TAP refuses TUNSETOFFLOAD 0x\(String(offload, radix: 16)) for the offloads the driver acked"
        }
    }
}
