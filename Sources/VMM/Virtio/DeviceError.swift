import IPC
import SystemPackage

/// Setting up or driving a virtio device failed: its disk image, its backend's handshake
/// or DRIVER_OK setup, a restarted worker's replay, or a ring the driver placed badly.
/// Messages start with the device or the option at fault.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    // The VM's device list
    case tooManyDevices(requested: Int, limit: Int)
    // --disk images
    case diskUnopenable(path: String, Errno, readOnly: Bool, direct: Bool)
    case diskNotAFileOrBlockDevice(path: String)
    case diskSizeNotSectorMultiple(path: String, size: Int)
    // Backends
    case backendUnreachable(kind: String, socket: String, VhostUserError)
    case workerEnded(device: String, worker: String, how: String)
    case noHostNIC(device: String)
    case eventfdFailed(Errno)
    case noVersion1(device: String)
    case queueCountOutOfRange(device: String, queues: Int)
    case handshakeFailed(device: String, VhostUserError)
    case activationFailed(device: String, VhostUserError)
    case restartedBackendDiffers(device: String, features: UInt64, queues: Int)
    case replayFailed(device: String, VhostUserError)
    // The driver's rings
    case ringNotInGuestRAM(queue: Int, part: String, address: UInt64, length: UInt64)

    public var description: String {
        switch self {
        case let .tooManyDevices(requested, limit):
            return "\(requested) virtio devices requested; volt-vmm supports at most \(limit) per VM"
        case let .diskUnopenable(path, errno, readOnly, direct):
            let hint: String
            switch errno {
            case .noSuchFileOrDirectory: hint = "create it first (e.g. truncate -s 1G \(path))"
            case .permissionDenied, .readOnlyFileSystem: hint = readOnly ? "check its permissions" : "check its permissions, or add ro=on"
            case .invalidArgument where direct: hint = "the filesystem does not support O_DIRECT; drop direct=on"
            default: hint = "check the path"
            }
            return "--disk path=\(path): \(errno) — \(hint)"
        case let .diskNotAFileOrBlockDevice(path):
            return "--disk path=\(path): not a regular file or block device"
        case let .diskSizeNotSectorMultiple(path, size):
            return "--disk path=\(path): size \(size) is not a multiple of 512 bytes — resize it (truncate -s)"
        case let .backendUnreachable(kind, socket, error):
            return "--\(kind) \(socket): cannot connect (\(error)) — start the backend first and pass its socket path"
        case let .workerEnded(device, worker, how):
            return "\(device): \(worker) \(how) during the vhost-user handshake"
        case let .noHostNIC(device):
            return "\(device): no host NIC was set up"
        case let .eventfdFailed(errno):
            return "eventfd: \(errno)"
        case let .noVersion1(device):
            return "\(device): the vhost-user backend does not offer VIRTIO_F_VERSION_1; volt-vmm drives modern virtio only"
        case let .queueCountOutOfRange(device, queues):
            return "\(device): the backend reports \(queues) queues; expected 1 to 64"
        case let .handshakeFailed(device, error):
            return "\(device): vhost-user handshake failed: \(error)"
        case let .activationFailed(device, error):
            return "\(device): vhost-user setup at DRIVER_OK failed: \(error)"
        case let .restartedBackendDiffers(device, features, queues):
            return "\(device): the restarted backend offers different features or queues (0x\(String(features, radix: 16)), \(queues) queues)"
        case let .replayFailed(device, error):
            return "\(device): replaying the device state on the restarted backend failed: \(error)"
        case let .ringNotInGuestRAM(queue, part, address, length):
            return "queue \(queue) \(part) at 0x\(String(address, radix: 16)) (\(length) bytes) is not aligned guest RAM"
        }
    }
}
