import Testing
@testable import Sandbox

struct LandlockRightsTests {
    /// (ABI, filesystem rights, network rights, scopes): every right each ABI introduced.
    static let table: [(Int, UInt64, UInt64, UInt64)] = [
        (1, 0x1fff, 0, 0),
        (2, 0x3fff, 0, 0),      // + REFER
        (3, 0x7fff, 0, 0),      // + TRUNCATE
        (4, 0x7fff, 0x3, 0),    // + TCP bind/connect
        (5, 0xffff, 0x3, 0),    // + IOCTL_DEV
        (6, 0xffff, 0x3, 0x3),  // + abstract unix socket and signal scopes
        (7, 0xffff, 0x3, 0x3),  // audit flags only
    ]

    @Test(arguments: table)
    func everyRightTheABIKnows(abi: Int, fs: UInt64, net: UInt64, scopes: UInt64) {
        let r = LandlockRights(abi: abi)
        #expect(r.filesystem == fs && r.network == net && r.scopes == scopes)
    }
}
