import Glibc
import SystemPackage

/// What a PUT checks on the host before it is accepted, as Firecracker checks at once
/// (a missing kernel is a 400 on PUT /boot-source, not on InstanceStart). They open
/// files, so they run on the main thread (`VMController.onMainThread`).
enum HostChecks {
    static func bootSource(_ boot: BootSourceConfig, store: String?) -> APIFault? {
        do { _ = try KernelStore.resolve(boot.kernelImagePath, store: store) } catch { return APIFault("kernel_image_path: \(error)") }
        return boot.initrdPath.flatMap { openable($0, O_RDONLY, field: "initrd_path") }
    }

    static func drive(_ drive: DriveConfig) -> APIFault? {
        switch drive.backend {
        case let .image(disk):
            return openable(disk.path, disk.readOnly ? O_RDONLY : O_RDWR, field: "path_on_host")
        case let .vhostUser(socket):
            var st = stat()
            guard stat(socket, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else {
                return APIFault("socket \(socket): not a Unix socket — start the vhost-user back-end first")
            }
            return nil
        }
    }

    static func networkInterface(_ nic: NetworkInterfaceConfig) -> APIFault? {
        guard let tap = nic.spec.tap, if_nametoindex(tap) == 0 else { return nil }
        return APIFault("host_dev_name \(tap): no such network device in volt-vmm's network namespace — create it first (ip tuntap add \(tap) mode tap vnet_hdr)")
    }

    static func output(_ path: String, field: String) -> APIFault? {
        switch OutputFile.open(path) {
        case let .success(fd): close(fd); return nil
        case let .failure(errno): return APIFault("\(field) \(path): \(errno) — give a file or named pipe volt-vmm can write")
        }
    }

    private static func openable(_ path: String, _ flags: Int32, field: String) -> APIFault? {
        let fd = open(path, flags | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            return APIFault("\(field) \(path): \(Errno(rawValue: errno)) — give a file volt-vmm can \(flags == O_RDONLY ? "read" : "read and write")")
        }
        close(fd)
        return nil
    }
}

/// A log or metrics destination opened as Firecracker opens it: read-write (a named pipe
/// then opens without a reader), non-blocking (a reader that stops reading costs dropped
/// lines, not a stalled VMM), appended to, created if missing, never truncated.
public enum OutputFile {
    public static func open(_ path: String) -> Result<Int32, Errno> {
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o640)
        return fd >= 0 ? .success(fd) : .failure(Errno(rawValue: errno))
    }
}
