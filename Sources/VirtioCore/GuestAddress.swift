/// A guest-physical address. Deliberately has no `+`/`-`: arithmetic is checked
/// only, so a hostile address plus a hostile length can never wrap silently.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// `self + offset`, or nil if that overflows 64 bits.
    public func checkedAdd(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// `self + offset`, throwing on overflow.
    public func adding(_ offset: UInt64) throws(GuestAddressOverflow) -> GuestAddress {
        guard let sum = checkedAdd(offset) else { throw GuestAddressOverflow(base: self, offset: offset) }
        return sum
    }

    /// `self - offset`, or nil if that goes below zero.
    public func checkedSub(_ offset: UInt64) -> GuestAddress? {
        let (difference, overflow) = rawValue.subtractingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(difference)
    }

    /// Distance from `base` up to `self`, or nil if `self < base`.
    public func offset(from base: GuestAddress) -> UInt64? {
        self >= base ? rawValue - base.rawValue : nil
    }

    /// True if the address is a multiple of `alignment` (a power of two).
    public func isAligned(to alignment: UInt64) -> Bool {
        rawValue & (alignment &- 1) == 0
    }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// `GuestAddress.adding` overflowed 64 bits.
public struct GuestAddressOverflow: Error, Equatable, CustomStringConvertible {
    public let base: GuestAddress
    public let offset: UInt64
    public init(base: GuestAddress, offset: UInt64) {
        self.base = base
        self.offset = offset
    }
    public var description: String { "guest address \(base) + 0x\(String(offset, radix: 16)) overflows 64 bits" }
}
