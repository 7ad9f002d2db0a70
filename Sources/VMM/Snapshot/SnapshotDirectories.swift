import Glibc
import SystemPackage

/// The directories snapshots may be written to once volt-vmm is locked down (each a
/// Landlock grant to create, write, rename and remove files beneath it). Only ones the
/// operator names, and never a directory every service shares: a grant there would let
/// a compromised VMM replace other programs' files.
public enum SnapshotDirectories {
    static let shared: Set<String> = ["/", "/run", "/var/run", "/tmp", "/var/tmp", "/dev", "/dev/shm", "/etc", "/usr",
                                      "/var", "/home", "/root", "/proc", "/sys", "/boot", "/srv", "/opt"]

    /// Each of `given` as an absolute path to an existing directory, refused if shared.
    public static func validate(_ given: [String], workingDirectory: String) throws(SnapshotError) -> [String] {
        try given.map { (dir) throws(SnapshotError) -> String in
            var path = absolute(dir, workingDirectory)
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            guard !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                throw .invalid("--snapshot-dir \(dir): give it without . or ..")
            }
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw .file(path: path, operation: "--snapshot-dir (an existing directory)", Errno(rawValue: errno == 0 ? ENOTDIR : errno))
            }
            guard !shared.contains(path) else {
                throw .unsupported("--snapshot-dir \(path) is a directory other programs share; give one of the VM's own (e.g. \(path)/vm1)")
            }
            return path
        }
    }

    /// Firecracker's command line has no such flag: there the API socket's directory is
    /// the default, unless it is a shared one (Firecracker's default /run is).
    public static func firecrackerDefault(apiSocket: String?, workingDirectory: String) -> [String] {
        guard let apiSocket, let slash = absolute(apiSocket, workingDirectory).lastIndex(of: "/") else { return [] }
        let dir = String(absolute(apiSocket, workingDirectory)[..<slash])
        return (try? validate([dir.isEmpty ? "/" : dir], workingDirectory: workingDirectory)) ?? []
    }
}
