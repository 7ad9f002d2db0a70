import CShim
import Glibc
import SystemPackage

/// Opens a `--disk` image in the VMM, so the worker never needs to open files: it gets
/// this fd. Read-only disks are opened read-only; `direct` adds O_DIRECT.
enum DiskImage {
    static func open(_ spec: DiskSpec) throws -> FileDescriptor {
        var flags = (spec.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        if spec.direct { flags |= VOLT_O_DIRECT }
        let fd = Glibc.open(spec.path, flags)
        guard fd >= 0 else {
            let err = Errno(rawValue: errno)
            let hint: String
            switch err {
            case .noSuchFileOrDirectory: hint = "create it first (e.g. truncate -s 1G \(spec.path))"
            case .permissionDenied, .readOnlyFileSystem: hint = spec.readOnly ? "check its permissions" : "check its permissions, or add ro=on"
            case .invalidArgument where spec.direct: hint = "the filesystem does not support O_DIRECT; drop direct=on"
            default: hint = "check the path"
            }
            throw RunError.usage("--disk path=\(spec.path): \(err) — \(hint)")
        }
        var info = stat()
        fstat(fd, &info)
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFBLK else {
            Glibc.close(fd)
            throw RunError.usage("--disk path=\(spec.path): not a regular file or block device")
        }
        guard type == S_IFBLK || info.st_size % 512 == 0 else {
            Glibc.close(fd)
            throw RunError.usage("--disk path=\(spec.path): size \(info.st_size) is not a multiple of 512 bytes — resize it (truncate -s)")
        }
        return FileDescriptor(rawValue: fd)
    }
}
