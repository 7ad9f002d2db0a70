import Foundation

/// The test guests' disk pattern (guests/README.md "Data pattern"): byte `offset` of
/// absolute sector `sector` for a given seed, all arithmetic mod 2^32.
public enum BlockPattern {
    public static func byte(seed: UInt32, sector: UInt64, offset: UInt32) -> UInt8 {
        var x = (seed &* 0x9e37_79b1) ^ (UInt32(truncatingIfNeeded: sector) &* 0x85eb_ca77)
            ^ (UInt32(truncatingIfNeeded: sector >> 32) &* 0x27d4_eb2f) ^ (offset &* 0xc2b2_ae3d)
        x ^= x >> 16
        x = x &* 0x7feb_352d
        x ^= x >> 15
        return UInt8(truncatingIfNeeded: x)
    }

    public static func sector(seed: UInt32, _ sector: UInt64) -> [UInt8] {
        (0..<512).map { byte(seed: seed, sector: sector, offset: UInt32($0)) }
    }

    /// Sectors in `range` of the image that do not hold the pattern.
    public static func mismatches(image: String, seed: UInt32, sectors range: Range<UInt64>) throws -> [UInt64] {
        let data = try Data(contentsOf: URL(fileURLWithPath: image))
        return range.filter { s in
            let start = Int(s) * 512
            guard start + 512 <= data.count else { return true }
            return Array(data[start..<start + 512]) != sector(seed: seed, s)
        }
    }

    public static func write(image: String, seed: UInt32, sectors range: Range<UInt64>) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        defer { try? handle.close() }
        for s in range {
            try handle.seek(toOffset: s * 512)
            handle.write(Data(sector(seed: seed, s)))
        }
    }
}
