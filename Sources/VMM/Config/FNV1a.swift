/// FNV-1a, 64 bits: a fast non-cryptographic hash for names (stable MACs, TAP name tags)
/// and for catching damaged files (the snapshot state's checksum).
enum FNV1a {
    static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}
