import VirtioCore
import CShim
import Glibc
import SystemPackage

/// A raw disk image opened before any sandbox: a regular file or a block device.
/// Thread-safe: every operation is a positioned syscall (preadv/pwritev/fallocate/
/// fdatasync) on fds that never change, so all queue threads share one DiskImage.
final class DiskImage: @unchecked Sendable {
    // @unchecked: only immutable stored properties; the fds are closed in deinit.

    /// The fd I/O goes through (O_DIRECT with --direct).
    let fd: CInt
    /// --direct only: the same file without O_DIRECT, for requests whose offset or
    /// length is not a multiple of `directAlignment` (see `DiskImage.io`).
    let bufferedFD: CInt?
    let size: UInt64
    let readOnly: Bool
    let direct: Bool
    /// O_DIRECT alignment for offsets, lengths and memory (512 or 4096; 1 without --direct).
    let directAlignment: Int
    /// Default device ID: derived from the image's device and inode numbers.
    let derivedSerial: String

    var capacity: UInt64 { size >> BlockLayout.sectorShift }

    enum OpenError: Error, CustomStringConvertible {
        case open(String, Errno)
        case reopen(CInt, Errno)
        case stat(Errno)
        case notADisk(String)
        case readOnlyFd(CInt)
        case direct(Errno)

        var description: String {
            switch self {
            case let .open(path, e): return "cannot open image \(path): \(e)"
            case let .reopen(fd, e): return "cannot reopen --image-fd \(fd): \(e)"
            case let .stat(e): return "cannot stat the image: \(e)"
            case let .notADisk(what): return "the image \(what) is neither a regular file nor a block device"
            case let .readOnlyFd(fd): return "--image-fd \(fd) is open read-only: pass --readonly or open it read-write"
            case let .direct(e): return "O_DIRECT is not usable on the image (\(e)): drop --direct"
            }
        }
    }

    /// Opens `path`, or adopts inherited `imageFD` (ownership taken).
    init(path: String?, imageFD: CInt?, readOnly: Bool, direct: Bool) throws(OpenError) {
        let access = readOnly ? O_RDONLY : O_RDWR
        var fd: CInt
        if let path {
            fd = volt_open_image(path, access, direct ? 1 : 0)
            if fd < 0 { throw .open(path, Errno(rawValue: -fd)) }
        } else {
            fd = imageFD ?? -1
            _ = volt_set_cloexec(fd)
            let mode = fcntl(fd, F_GETFL) & O_ACCMODE
            if mode < 0 { throw .reopen(fd, Errno(rawValue: errno)) }
            if !readOnly && mode == O_RDONLY { close(fd); throw .readOnlyFd(fd) }
            if direct {
                let r = volt_set_direct(fd, 1)
                if r < 0 { close(fd); throw .direct(Errno(rawValue: -r)) }
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = Errno(rawValue: errno); close(fd); throw .stat(e) }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else { close(fd); throw .notADisk(path ?? "fd \(fd)") }
        // lseek(SEEK_END) gives the size of regular files and block devices alike.
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { let e = Errno(rawValue: errno); close(fd); throw .stat(e) }

        var alignment = 1
        var buffered: CInt? = nil
        if direct {
            // Probe the O_DIRECT alignment: 512 works on most devices and filesystems;
            // some (4Kn disks, some filesystems) need 4096. EINVAL means "misaligned".
            alignment = Self.probeDirectAlignment(fd, size: UInt64(end))
            let b = volt_reopen_fd(fd, access, 0)
            if b < 0 { close(fd); throw .reopen(fd, Errno(rawValue: -b)) }
            buffered = b
        }
        self.fd = fd
        self.bufferedFD = buffered
        self.size = UInt64(end)
        self.readOnly = readOnly
        self.direct = direct
        self.directAlignment = alignment
        self.derivedSerial = Self.serial(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    deinit {
        close(fd)
        if let bufferedFD { close(bufferedFD) }
    }

    /// "volt" + hex device + "-" + hex inode, cut to 20 bytes (the ID's maximum).
    static func serial(device: UInt64, inode: UInt64) -> String {
        String(("volt" + String(device, radix: 16) + "-" + String(inode, radix: 16)).prefix(BlockLayout.idBytes))
    }

    private static func probeDirectAlignment(_ fd: CInt, size: UInt64) -> Int {
        guard size >= 4096 else { return 4096 }
        var buffer: UnsafeMutableRawPointer?
        guard posix_memalign(&buffer, 4096, 4096) == 0, let buffer else { return 4096 }
        defer { free(buffer) }
        return pread(fd, buffer, 512, 512) == 512 ? 512 : 4096
    }

    // MARK: - I/O (each returns nil or the errno that failed the request)

    func read(_ iovecs: UnsafeBufferPointer<iovec>, offset: UInt64, length: UInt64) -> Errno? {
        io(write: false, iovecs, offset: offset, length: length)
    }

    func write(_ iovecs: UnsafeBufferPointer<iovec>, offset: UInt64, length: UInt64) -> Errno? {
        if readOnly { return .badFileDescriptor }
        return io(write: true, iovecs, offset: offset, length: length)
    }

    func flush() -> Errno? {
        while fdatasync(fd) != 0 {
            if errno != EINTR { return Errno(rawValue: errno) }
        }
        return nil
    }

    /// Deallocates a range. The spec lets a device ignore discards (5.2.6.2: it MAY
    /// deallocate), so a file system without hole punching is not an error.
    func discard(offset: UInt64, length: UInt64) -> Errno? {
        if readOnly { return .badFileDescriptor }
        if length == 0 { return nil }
        let r = volt_fallocate(fd, VOLT_FALLOC_FL_PUNCH_HOLE | VOLT_FALLOC_FL_KEEP_SIZE, offset, length)
        if r == 0 || r == -EOPNOTSUPP { return nil }
        return Errno(rawValue: -r)
    }

    /// Makes the range read as zeroes (5.2.6.2). With `unmap` it may deallocate (punch a
    /// hole, which reads back as zeroes); otherwise, or if punching is unsupported, it
    /// zeroes with FALLOC_FL_ZERO_RANGE, and failing that with plain zero writes.
    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) -> Errno? {
        if readOnly { return .badFileDescriptor }
        if length == 0 { return nil }
        if unmap {
            let r = volt_fallocate(fd, VOLT_FALLOC_FL_PUNCH_HOLE | VOLT_FALLOC_FL_KEEP_SIZE, offset, length)
            if r == 0 { return nil }
            if r != -EOPNOTSUPP { return Errno(rawValue: -r) }
        }
        let r = volt_fallocate(fd, VOLT_FALLOC_FL_ZERO_RANGE | VOLT_FALLOC_FL_KEEP_SIZE, offset, length)
        if r == 0 { return nil }
        if r != -EOPNOTSUPP && r != -EINVAL { return Errno(rawValue: -r) }
        return writeZeroBuffers(offset: offset, length: length)
    }

    private func writeZeroBuffers(offset: UInt64, length: UInt64) -> Errno? {
        let chunk = 1 << 20
        var buffer: UnsafeMutableRawPointer?
        guard posix_memalign(&buffer, 4096, chunk) == 0, let buffer else { return .noMemory }
        defer { free(buffer) }
        memset(buffer, 0, chunk)
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            if let e = Self.transfer(fd: ioFD(offset: offset + done, length: UInt64(n)), write: true,
                                     buffer, count: n, offset: offset + done) {
                return e
            }
            done += UInt64(n)
        }
        return nil
    }

    /// The fd for a request: O_DIRECT when the file range is aligned, else the buffered fd.
    private func ioFD(offset: UInt64, length: UInt64) -> CInt {
        guard let bufferedFD else { return fd }
        let mask = UInt64(directAlignment - 1)
        return (offset & mask) == 0 && (length & mask) == 0 ? fd : bufferedFD
    }

    /// preadv/pwritev straight between guest memory and the image.
    ///
    /// With --direct, O_DIRECT also requires each memory buffer's address and length to
    /// be aligned. A guest buffer that is not (rare: Linux hands out page-aligned
    /// buffers) goes through an aligned bounce buffer: the one case where data is
    /// copied. A file range that is not aligned uses the buffered fd instead.
    private func io(write: Bool, _ iovecs: UnsafeBufferPointer<iovec>, offset: UInt64, length: UInt64) -> Errno? {
        let target = ioFD(offset: offset, length: length)
        if target == fd && direct {
            let mask = directAlignment - 1
            let aligned = iovecs.allSatisfy { v in
                (Int(bitPattern: v.iov_base) & mask) == 0 && (v.iov_len & mask) == 0
            }
            if !aligned { return bounce(write: write, iovecs, offset: offset, length: length) }
        }
        return Self.transfer(fd: target, write: write, iovecs, offset: offset)
    }

    /// One contiguous buffer (bounce and zero writes).
    static func transfer(fd: CInt, write: Bool, _ buffer: UnsafeMutableRawPointer, count: Int, offset: UInt64) -> Errno? {
        var v = iovec(iov_base: buffer, iov_len: count)
        return withUnsafePointer(to: &v) { transfer(fd: fd, write: write, UnsafeBufferPointer(start: $0, count: 1), offset: offset) }
    }

    /// Loops over short transfers and IOV_MAX. A read that hits end of file (the image
    /// shrank under us) is an I/O error, never a partial success. The common case, one
    /// call moving everything, touches no heap; the rest continues on a copy.
    static func transfer(fd: CInt, write: Bool, _ vectors: UnsafeBufferPointer<iovec>, offset: UInt64) -> Errno? {
        let total = vectors.reduce(0) { $0 + $1.iov_len }
        if vectors.count <= 1024, total > 0 {
            let n = write ? pwritev(fd, vectors.baseAddress, CInt(vectors.count), off_t(offset))
                          : preadv(fd, vectors.baseAddress, CInt(vectors.count), off_t(offset))
            if n == total { return nil }
            if n < 0 && errno != EINTR { return Errno(rawValue: errno) }
            if n == 0 { return .ioError }
            return transferRest(fd: fd, write: write, Array(vectors), offset: offset, done: max(n, 0))
        }
        return transferRest(fd: fd, write: write, Array(vectors), offset: offset, done: 0)
    }

    /// `transfer` after the first `done` bytes moved.
    private static func transferRest(fd: CInt, write: Bool, _ vectors: [iovec], offset: UInt64, done: Int) -> Errno? {
        var iov = vectors
        var position = offset + UInt64(done)
        var index = 0
        /// Drops `n` transferred bytes from the front of iov[index...].
        func advance(_ n: Int) {
            var left = n
            while left > 0 && index < iov.count {
                let len = iov[index].iov_len
                if left >= len { left -= len; index += 1 } else {
                    iov[index].iov_base = iov[index].iov_base.map { $0 + left }
                    iov[index].iov_len = len - left
                    left = 0
                }
            }
        }
        advance(done)
        while index < iov.count {
            if iov[index].iov_len == 0 { index += 1; continue }
            let count = min(iov.count - index, 1024)   // IOV_MAX
            let n: Int = iov.withUnsafeBufferPointer { p in
                write ? pwritev(fd, p.baseAddress! + index, CInt(count), off_t(position))
                      : preadv(fd, p.baseAddress! + index, CInt(count), off_t(position))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return Errno(rawValue: errno)
            }
            if n == 0 { return .ioError }
            position += UInt64(n)
            advance(n)
        }
        return nil
    }

    /// O_DIRECT through an aligned bounce buffer, 1 MiB at a time.
    private func bounce(write: Bool, _ iovecs: UnsafeBufferPointer<iovec>, offset: UInt64, length: UInt64) -> Errno? {
        let chunk = 1 << 20
        var buffer: UnsafeMutableRawPointer?
        guard posix_memalign(&buffer, max(directAlignment, 4096), chunk) == 0, let buffer else { return .noMemory }
        defer { free(buffer) }
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            let part = IOVecSlice.slice(Array(iovecs), skip: done, length: UInt64(n))
            if write { Self.gather(part, into: buffer) }
            if let e = Self.transfer(fd: fd, write: write, buffer, count: n, offset: offset + done) {
                return e
            }
            if !write { Self.scatter(buffer, into: part) }
            done += UInt64(n)
        }
        return nil
    }

    static func gather(_ vectors: [iovec], into buffer: UnsafeMutableRawPointer) {
        var at = 0
        for v in vectors { if let b = v.iov_base { (buffer + at).copyMemory(from: b, byteCount: v.iov_len) }; at += v.iov_len }
    }

    static func scatter(_ buffer: UnsafeRawPointer, into vectors: [iovec]) {
        var at = 0
        for v in vectors { v.iov_base?.copyMemory(from: buffer + at, byteCount: v.iov_len); at += v.iov_len }
    }
}
