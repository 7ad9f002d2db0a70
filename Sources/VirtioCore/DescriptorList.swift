/// A chain's buffers without a heap allocation for short chains: the first
/// `inlineCapacity` live inline (a value, no ARC), the rest in an array that exists only
/// for longer chains. Append-only; built once by `ChainParser`.
public struct DescriptorList: RandomAccessCollection {
    /// Chains a driver typically builds: net TX (header, frame), block (header, data,
    /// status), an RX buffer (one) fit here.
    public static var inlineCapacity: Int { 4 }

    /// Four named fields, not an InlineArray or a tuple: both were copied through
    /// generic runtime value witnesses here; a struct of plain fields is copied as bytes.
    @usableFromInline var b0 = DescriptorBuffer.placeholder
    @usableFromInline var b1 = DescriptorBuffer.placeholder
    @usableFromInline var b2 = DescriptorBuffer.placeholder
    @usableFromInline var b3 = DescriptorBuffer.placeholder
    /// Buffers past the fourth (nil for short chains: nothing to retain).
    @usableFromInline var spill: [DescriptorBuffer]?
    public private(set) var count = 0

    init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    @inlinable
    public subscript(position: Int) -> DescriptorBuffer {
        precondition(position >= 0 && position < count, "DescriptorList index out of range")
        switch position {
        case 0: return b0
        case 1: return b1
        case 2: return b2
        case 3: return b3
        default: return spill.unsafelyUnwrapped[position - Self.inlineCapacity]
        }
    }

    /// Empties the list; a spill array keeps its capacity for the next chain.
    @inline(__always)
    mutating func removeAll() {
        count = 0
        if spill != nil { spill!.removeAll(keepingCapacity: true) }
    }

    @inline(__always)
    mutating func append(_ buffer: DescriptorBuffer) {
        switch count {
        case 0: b0 = buffer
        case 1: b1 = buffer
        case 2: b2 = buffer
        case 3: b3 = buffer
        default:
            if spill == nil { spill = []; spill!.reserveCapacity(8) }
            spill!.append(buffer)
        }
        count += 1
    }
}

extension DescriptorBuffer {
    /// Fills unused inline slots; never visible through `DescriptorList`.
    static let placeholder = DescriptorBuffer(address: GuestAddress(0), length: 0, writable: false,
                                              host: UnsafeMutableRawPointer(bitPattern: 1)!)
}
