import Glibc
import SystemPackage

/// Guest memory as a snapshot's memory file: a sparse file of the guest's size in which
/// only what the guest wrote is data. Writing walks the memfd's data ranges (SEEK_DATA /
/// SEEK_HOLE: pages never touched are holes there) and skips pages that are all zero;
/// reading walks the file's data ranges into a fresh memfd, so both cost time in
/// proportion to the memory the guest touched, not to its size.
enum MemoryFile {
    static let page = 4096
    /// The most written or read in one call.
    static let chunk = 8 << 20
    /// lseek whences Glibc hides behind _GNU_SOURCE (Linux's values).
    static let seekData: Int32 = 3, seekHole: Int32 = 4

    /// Writes `memory` to `fd` (an empty file); returns the bytes of data written.
    @discardableResult
    static func write(_ memory: GuestMemory, to fd: Int32, path: String) throws(SnapshotError) -> UInt64 {
        guard ftruncate(fd, off_t(memory.size)) == 0 else { throw .file(path: path, operation: "ftruncate", Errno(rawValue: errno)) }
        let base = UnsafeRawPointer(bitPattern: UInt(memory.file.userAddress(atOffset: 0)))!
        var written: UInt64 = 0
        for range in try dataRanges(memory.file.fd.rawValue, size: memory.size, path: "guest memory") {
            var offset = range.lowerBound
            while offset < range.upperBound {
                // A run of pages with data, up to `chunk`: zero pages stay holes.
                while offset < range.upperBound && isZero(base + Int(offset)) { offset += UInt64(page) }
                var end = offset
                while end < range.upperBound && end - offset < UInt64(chunk) && !isZero(base + Int(end)) { end += UInt64(page) }
                guard end > offset else { continue }
                try writeAll(fd, base + Int(offset), Int(end - offset), at: offset, path: path)
                written += end - offset
                offset = end
            }
        }
        guard fdatasync(fd) == 0 else { throw .file(path: path, operation: "fdatasync", Errno(rawValue: errno)) }
        return written
    }

    /// Reads the memory file at `fd` into `memory` (fresh: all zero); returns the bytes of
    /// data read. The file must be exactly the guest's size.
    @discardableResult
    static func read(from fd: Int32, path: String, into memory: GuestMemory) throws(SnapshotError) -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .file(path: path, operation: "fstat", Errno(rawValue: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG, UInt64(st.st_size) == memory.size else {
            throw .memoryFileSize(path: path, bytes: UInt64(max(st.st_size, 0)), expected: memory.size)
        }
        let base = UnsafeMutableRawPointer(bitPattern: UInt(memory.file.userAddress(atOffset: 0)))!
        var read: UInt64 = 0
        for range in try dataRanges(fd, size: memory.size, path: path) {
            var offset = range.lowerBound
            while offset < range.upperBound {
                let count = Int(min(range.upperBound - offset, UInt64(chunk)))
                let n = pread(fd, base + Int(offset), count, off_t(offset))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    if n == 0 { throw .memoryFileSize(path: path, bytes: offset, expected: memory.size) }
                    throw .file(path: path, operation: "read", Errno(rawValue: errno))
                }
                offset += UInt64(n)
                read += UInt64(n)
            }
        }
        return read
    }

    /// The page-aligned ranges of `fd` that hold data, within `size`.
    static func dataRanges(_ fd: Int32, size: UInt64, path: String) throws(SnapshotError) -> [Range<UInt64>] {
        var ranges: [Range<UInt64>] = []
        var offset: off_t = 0
        while UInt64(offset) < size {
            let data = lseek(fd, offset, seekData)
            if data < 0 {
                if errno == ENXIO { break }   // no data after offset
                throw .file(path: path, operation: "lseek(SEEK_DATA)", Errno(rawValue: errno))
            }
            var hole = lseek(fd, data, seekHole)
            if hole < 0 { throw .file(path: path, operation: "lseek(SEEK_HOLE)", Errno(rawValue: errno)) }
            hole = min(hole, off_t(size))
            let start = UInt64(data) & ~UInt64(page - 1)
            let end = min((UInt64(hole) + UInt64(page - 1)) & ~UInt64(page - 1), size)
            if end > start { ranges.append(start..<end) }
            offset = off_t(end)
        }
        return ranges
    }

    private static func isZero(_ p: UnsafeRawPointer) -> Bool {
        let words = p.assumingMemoryBound(to: UInt64.self)
        var any: UInt64 = 0
        for i in 0..<(page / 8) { any |= words[i] }
        return any == 0
    }

    private static func writeAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int, at offset: UInt64, path: String) throws(SnapshotError) {
        var done = 0
        while done < count {
            let n = pwrite(fd, p + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .file(path: path, operation: "write", Errno(rawValue: n < 0 ? errno : EIO)) }
            done += n
        }
    }
}
