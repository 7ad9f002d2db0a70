import CShim
import Glibc

/// A file-system right a locked-down process keeps beneath one path.
public struct LandlockGrant: Sendable, Equatable {
    public enum Access: Sendable, Equatable {
        /// unlink files directly in the directory.
        case removeFiles
        /// rmdir directories directly in the directory.
        case removeDirectories
        /// Create, write, truncate, rename and remove regular files beneath the directory
        /// (snapshot files); nothing can be read or executed there.
        case writeNewFiles
    }

    public var path: String
    public var access: Access

    public init(_ path: String, _ access: Access) { self.path = path; self.access = access }

    var bits: UInt64 {
        switch access {
        case .removeFiles: return UInt64(VOLT_LL_FS_REMOVE_FILE)
        case .removeDirectories: return UInt64(VOLT_LL_FS_REMOVE_DIR)
        case .writeNewFiles:
            return UInt64(VOLT_LL_FS_MAKE_REG | VOLT_LL_FS_WRITE_FILE | VOLT_LL_FS_REMOVE_FILE | VOLT_LL_FS_TRUNCATE)
        }
    }
}

extension Sandbox {
    /// For a process that keeps running with threads and fds it set up (the VMM): sets
    /// no_new_privs, then restricts the calling thread and every thread or child it creates
    /// from now on with Landlock — every file-system and TCP right the kernel knows handled,
    /// abstract Unix sockets scoped to the domain, only `grants` allowed. Signals are not
    /// scoped: the VMM stops its workers with them. Returns the Landlock ABI used.
    /// Threads that already run are not restricted: call it before starting any.
    public static func lockDownFileSystem(keeping grants: [LandlockGrant]) throws(SandboxError) -> Int {
        let r = volt_set_no_new_privs()
        if r < 0 { throw .noNewPrivs(errno: -r) }
        let abi = volt_landlock_abi()
        guard abi > 0 else { throw .landlock("landlock_create_ruleset(VERSION)", errno: -abi) }
        let rights = LandlockRights(abi: Int(abi))
        let scopes = rights.scopes & UInt64(VOLT_LL_SCOPE_ABSTRACT_UNIX_SOCKET)
        var failed: CInt = -1
        let paths = grants.map { strdup($0.path) }
        defer { paths.forEach { free($0) } }
        let access = grants.map { $0.bits & rights.filesystem }   // rights this kernel's ABI knows
        let result = paths.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { p in
            volt_landlock_restrict(rights.filesystem, rights.network, scopes, p.baseAddress, access, CInt(grants.count), &failed)
        }
        guard result == 0 else {
            let what = failed >= 0 ? "Landlock rule for \(grants[Int(failed)].path)" : "landlock_restrict_self (ABI \(abi))"
            throw .landlock(what, errno: -result)
        }
        return Int(abi)
    }
}

extension Sandbox {
    /// Empties every capability set of the calling thread (ambient, bounding, inheritable,
    /// permitted, effective); threads it creates later inherit the empty sets.
    public static func dropAllCapabilities() throws(SandboxError) {
        try Capabilities.dropAll()
    }
}
