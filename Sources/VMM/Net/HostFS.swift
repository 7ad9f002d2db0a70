import Glibc
import SystemPackage

/// Small file-system reads and writes for host networking (sysfs attributes, networkd
/// units), on SystemPackage: volt-vmm does not link Foundation.
enum HostFS {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The whole file, or nil when it cannot be opened or read.
    static func read(_ path: String) -> [UInt8]? {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? fd.close() }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            guard let n = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0, retryOnInterrupt: true) }) else { return nil }
            if n == 0 { return result }
            result += chunk[..<n]
        }
    }

    /// A text attribute without its trailing newline.
    static func readText(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }.map { text in
            text.hasSuffix("\n") ? String(text.dropLast()) : text
        }
    }

    /// Replaces `path` with `text` (written to a temporary name, then renamed, so a reader
    /// never sees half a file).
    static func write(_ path: String, _ text: String) throws(Errno) {
        let temporary = path + ".tmp"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(temporary), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch { throw error as? Errno ?? .ioError }
        do {
            _ = try fd.writeAll(Array(text.utf8))
            try fd.close()
        } catch {
            try? fd.close()
            unlink(temporary)
            throw error as? Errno ?? .ioError
        }
        guard rename(temporary, path) == 0 else {
            let err = Errno(rawValue: errno)
            unlink(temporary)
            throw err
        }
    }

    /// Entry names in a directory (without . and ..), or nil when it cannot be listed.
    static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
