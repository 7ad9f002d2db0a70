import CShim

/// The Landlock rights this sandbox handles (denies, since no rule grants any) for a
/// given kernel ABI: every right that ABI knows.
public struct LandlockRights: Sendable, Equatable {
    public var filesystem: UInt64
    public var network: UInt64
    public var scopes: UInt64

    public init(abi: Int) {
        var fs: UInt64 = 0
        if abi >= 1 { fs |= (1 << 13) - 1 }                          // EXECUTE ... MAKE_SYM
        if abi >= 2 { fs |= UInt64(VOLT_LL_FS_REFER) }
        if abi >= 3 { fs |= UInt64(VOLT_LL_FS_TRUNCATE) }
        if abi >= 5 { fs |= UInt64(VOLT_LL_FS_IOCTL_DEV) }
        filesystem = fs
        network = abi >= 4 ? UInt64(VOLT_LL_NET_BIND_TCP | VOLT_LL_NET_CONNECT_TCP) : 0
        scopes = abi >= 6 ? UInt64(VOLT_LL_SCOPE_ABSTRACT_UNIX_SOCKET | VOLT_LL_SCOPE_SIGNAL) : 0
        // ABI 7 adds audit-log flags for restrict_self, no new rights. A newer ABI may
        // add rights this table does not know: they stay unhandled (allowed) until added.
    }
}

enum Landlock {
    /// Restricts the calling thread with every right the running kernel knows and no
    /// rule. Returns the ABI used; throws if Landlock is unavailable.
    static func restrictEverything() throws(SandboxError) -> Int {
        let abi = volt_landlock_abi()
        guard abi > 0 else { throw .landlock("landlock_create_ruleset(VERSION)", errno: -abi) }
        let rights = LandlockRights(abi: Int(abi))
        let r = volt_landlock_restrict_empty(rights.filesystem, rights.network, rights.scopes)
        guard r == 0 else { throw .landlock("landlock_restrict_self (ABI \(abi))", errno: -r) }
        return Int(abi)
    }
}
