import CShim
import Glibc
import IPC
import WorkerCore

/// The host end of the device, set up before the sandbox: the socket listening on
/// `uds_path` (made here, or inherited from volt-vmm so it outlives a restart), and how
/// the jailed worker names `<uds_path>_P`.
struct HostSide {
    let listenFD: CInt
    /// "<dir>/<name>" unjailed; "/<name>" when the jail's root is `<dir>`.
    let connectPrefix: String
    /// The jail's root: uds_path's directory, resolved (nil without a sandbox).
    let rootDirectory: String?

    static func open(_ a: VsockArguments, jailed: Bool) throws(WorkerError) -> HostSide {
        let (dir, name) = split(a.udsPath)
        guard !name.isEmpty else { throw .usage("--uds-path \(a.udsPath) has no file name (fix: name the socket, e.g. /run/vm1/v.sock)") }
        var root: String?
        if jailed {
            guard let resolved = realpath(dir, nil) else {
                throw .device("--uds-path \(a.udsPath): its directory \(dir): \(errnoText(errno)) (fix: create the directory first)")
            }
            root = String(cString: resolved)
            free(resolved)
            guard root != "/" else {
                throw .usage("--uds-path \(a.udsPath) is in /, which the jail would expose (fix: put the socket in a directory of its own)")
            }
        }
        let fd: CInt
        if let inherited = a.udsFD {
            guard volt_fd_is_socket(inherited) == 1 else {
                throw .usage("--uds-fd \(inherited) is not a socket (fix: pass the fd of a socket listening on --uds-path)")
            }
            fd = inherited
            _ = volt_set_cloexec(fd)
        } else {
            let r = volt_remove_stale_socket(a.udsPath)
            if r == -EEXIST { throw .device("--uds-path \(a.udsPath) exists and is not a socket (fix: remove it or choose another path)") }
            fd = volt_unix_listen(a.udsPath, 128)
            guard fd >= 0 else { throw .device("cannot listen on --uds-path \(a.udsPath): \(errnoText(-fd)) (fix: check the directory exists and is writable)") }
        }
        _ = volt_set_nonblocking(fd)
        return HostSide(listenFD: fd, connectPrefix: jailed ? "/" + name : a.udsPath, rootDirectory: root)
    }

    /// ("/a/b", "c") for "/a/b/c"; ("/", "c") for "/c".
    static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }
}
