import Glibc
import SystemPackage

/// A kernel or initrd file on the host, opened read-only. The loaders learn its size
/// up front (to place it) and then read it whole, either into an array (kernels, which
/// are parsed) or straight into guest RAM (initrds, which are only copied).
struct HostFile {
    /// "kernel" or "initrd": names the file in errors and the flag that chose it.
    let role: String
    let path: String
    let size: UInt64
    private let fd: FileDescriptor

    /// Larger than any kernel or initrd volt-vmm can place below the MMIO hole.
    static let sizeLimit: UInt64 = Layout.mmioHoleStart

    static func open(_ path: String, role: String) throws(BootLoaderError) -> HostFile {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw .cannotOpen(role: role, path: path, errno: Self.text(error))
        }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else {
            let err = Errno(rawValue: errno)
            try? fd.close()
            throw .cannotOpen(role: role, path: path, errno: Self.text(err))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            try? fd.close()
            throw .notARegularFile(role: role, path: path)
        }
        let size = UInt64(max(0, info.st_size))
        guard size <= sizeLimit else {
            try? fd.close()
            throw .fileTooLarge(role: role, path: path, size: size, limit: sizeLimit)
        }
        return HostFile(role: role, path: path, size: size, fd: fd)
    }

    func close() { try? fd.close() }

    /// Fills `buffer` from file offset `offset`; a short file is a read error.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BootLoaderError) {
        var done = 0
        while done < buffer.count {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let n: Int
            do {
                n = try fd.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: chunk, retryOnInterrupt: true)
            } catch {
                throw .cannotRead(role: role, path: path, errno: Self.text(error))
            }
            guard n > 0 else {
                throw .cannotRead(role: role, path: path, errno: "file ended after \(offset + UInt64(done)) of \(size) bytes")
            }
            done += n
        }
    }

    func readAll() throws(BootLoaderError) -> [UInt8] {
        try readPrefix(Int(size))
    }

    /// Reads `count` bytes from the start of the file, fewer if it is shorter.
    func readPrefix(_ count: Int) throws(BootLoaderError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: min(count, Int(size)))
        var failure: BootLoaderError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(BootLoaderError) { try read(into: buffer, at: 0) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Opens, reads whole and closes: for kernels.
    static func contents(of path: String, role: String) throws(BootLoaderError) -> [UInt8] {
        let file = try open(path, role: role)
        defer { file.close() }
        return try file.readAll()
    }

    private static func text(_ error: any Error) -> String {
        if let errno = error as? Errno { return String(cString: strerror(errno.rawValue)) }
        return "\(error)"
    }
}
