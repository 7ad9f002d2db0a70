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
            throw DeviceError.diskUnopenable(path: spec.path, Errno(rawValue: errno), readOnly: spec.readOnly, direct: spec.direct)
        }
        var info = stat()
        fstat(fd, &info)
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFBLK else {
            Glibc.close(fd)
            throw DeviceError.diskNotAFileOrBlockDevice(path: spec.path)
        }
        guard type == S_IFBLK || info.st_size % 512 == 0 else {
            Glibc.close(fd)
            throw DeviceError.diskSizeNotSectorMultiple(path: spec.path, size: Int(info.st_size))
        }
        return FileDescriptor(rawValue: fd)
    }
}
