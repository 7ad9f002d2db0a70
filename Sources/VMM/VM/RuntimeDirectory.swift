import Glibc
import SystemPackage

/// `/run/volt-vmm/<id>/` for the VM's lifetime: a `pid` file operators and tooling can
/// find the VM by, and the guard that two VMs never run under one id. Removed on every
/// exit path that unwinds (normal, guest reset, signal, worker failure); a directory left
/// by a VM that was SIGKILLed is recognised as stale (its pid is gone) and replaced.
public final class RuntimeDirectory {
    /// The base directory: `VOLT_RUNTIME_DIR` if set; /run/volt-vmm for root; for other
    /// users $XDG_RUNTIME_DIR/volt-vmm, else /tmp/volt-vmm-<uid>.
    static var base: String {
        if let dir = getenv("VOLT_RUNTIME_DIR") { return String(cString: dir) }
        if getuid() == 0 { return "/run/volt-vmm" }
        if let xdg = getenv("XDG_RUNTIME_DIR") { return String(cString: xdg) + "/volt-vmm" }
        return "/tmp/volt-vmm-\(getuid())"
    }

    public let path: String
    private var removed = false

    /// Creates `<base>/<id>` under `RuntimeDirectory.base`.
    public convenience init(id: VMID) throws {
        try self.init(id: id, base: Self.base)
    }

    init(id: VMID, base: String) throws {
        path = "\(base)/\(id)"
        if mkdir(base, 0o755) != 0 && errno != EEXIST {
            throw RuntimeDirectoryError.baseUncreatable(base, Errno(rawValue: errno))
        }
        if mkdir(path, 0o700) != 0 {
            guard errno == EEXIST else {
                throw RuntimeDirectoryError.uncreatable(path, Errno(rawValue: errno))
            }
            if let pid = Self.readPID(path), pid != getpid(), kill(pid, 0) == 0 || errno == EPERM {
                throw RuntimeDirectoryError.alreadyRunning(id: id, pid: pid)
            }
            Self.removeTree(path)   // stale: its VM is gone
            guard mkdir(path, 0o700) == 0 else {
                throw RuntimeDirectoryError.uncreatable(path, Errno(rawValue: errno))
            }
        }
        try writePID()
    }

    deinit { remove() }

    public func remove() {
        guard !removed else { return }
        removed = true
        // Its only file, by name: a locked-down volt-vmm may remove but not list it.
        unlink("\(path)/pid")
        rmdir(path)
    }

    private func writePID() throws {
        let text = "\(getpid())\n"
        do {
            let fd = try FileDescriptor.open("\(path)/pid", .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? fd.close() }
            _ = try fd.writeAll(text.utf8)
        } catch {
            throw RuntimeDirectoryError.pidFileUnwritable(directory: path, error as? Errno ?? .ioError)
        }
    }

    /// The directory holding `path` (the base, for a VM's runtime directory).
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func readPID(_ dir: String) -> pid_t? {
        guard let fd = try? FileDescriptor.open("\(dir)/pid", .readOnly) else { return nil }
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = (try? buffer.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
        return pid_t(String(decoding: buffer[0..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
    }

    /// Removes the directory's files, then the directory (it holds no subdirectories).
    static func removeTree(_ dir: String) {
        if let d = opendir(dir) {
            while let entry = readdir(d) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink("\(dir)/\(name)") }
            }
            closedir(d)
        }
        rmdir(dir)
    }
}
