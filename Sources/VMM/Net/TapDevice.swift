import CShim
import Glibc
import SystemPackage

/// TAP queues opened by the VMM and handed to a net worker, which never opens devices
/// itself. Opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (+IFF_MULTI_QUEUE for several
/// queue pairs), as volt-net-worker requires. The VMM keeps its copies for the VM's
/// lifetime, so a TAP volt-vmm created lives exactly as long as the VM.
final class TapDevice {
    let name: String
    let queues: [FileDescriptor]

    /// Opens the existing TAP `name` (`--net tap=`): a missing interface or one that is not
    /// a TAP is an error, never silently created.
    convenience init(existing name: String, queuePairs: Int) throws {
        guard if_nametoindex(name) != 0 else {
            throw HostNetworkError.tapNotFound(name, multiQueue: queuePairs > 1)
        }
        guard access("/sys/class/net/\(name)/tun_flags", F_OK) == 0 else {
            throw HostNetworkError.notATap(name)
        }
        try self.init(name: name, queuePairs: queuePairs)
    }

    init(name: String, queuePairs: Int) throws {
        var flags = VOLT_IFF_TAP | VOLT_IFF_NO_PI | VOLT_IFF_VNET_HDR
        if queuePairs > 1 { flags |= VOLT_IFF_MULTI_QUEUE }
        var opened: [FileDescriptor] = []
        var actual = name
        for _ in 0..<queuePairs {
            var nameOut = [CChar](repeating: 0, count: Int(VOLT_IFNAMSIZ))
            let fd = volt_tap_open(name, Int32(flags), &nameOut)
            guard fd >= 0 else {
                for q in opened { try? q.close() }
                throw Self.openError(name: name, errno: Errno(rawValue: -fd), multiQueue: queuePairs > 1)
            }
            actual = String(cString: nameOut)
            opened.append(FileDescriptor(rawValue: fd))
        }
        self.name = actual
        queues = opened
    }

    deinit {
        for q in queues { try? q.close() }
    }

    private static func openError(name: String, errno: Errno, multiQueue: Bool) -> HostNetworkError {
        switch errno {
        case .noSuchFileOrDirectory: return .tunMissing(name)
        case .notPermitted, .permissionDenied: return .tapPermissionDenied(name, multiQueue: multiQueue)
        case .invalidArgument: return .tapFlagsMismatch(name, multiQueue: multiQueue)
        case .resourceBusy: return .tapBusy(name)
        default: return .tapOpenFailed(name, errno)
        }
    }
}
