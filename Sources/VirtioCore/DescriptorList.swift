/// A chain's buffers without a heap allocation for short chains: the first
/// `inlineCapacity` live inline (a value, no ARC), the rest in an array that exists only
/// for longer chains. Append-only; built once by `ChainParser`.
public struct DescriptorList: RandomAccessCollection {
    /// Chains a driver typically builds: net TX (header, frame), block (header, data,
    /// status), an RX buffer (one) fit here.
    public static let inlineCapacity = 4

    private var inline = InlineArray<4, DescriptorBuffer>(repeating: DescriptorBuffer.placeholder)
    private var spill: [DescriptorBuffer] = []
    public private(set) var count = 0

    init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> DescriptorBuffer {
        precondition(position >= 0 && position < count, "DescriptorList index out of range")
        return position < Self.inlineCapacity ? inline[position] : spill[position - Self.inlineCapacity]
    }

    mutating func append(_ buffer: DescriptorBuffer) {
        if count < Self.inlineCapacity {
            inline[count] = buffer
        } else {
            if spill.isEmpty { spill.reserveCapacity(8) }
            spill.append(buffer)
        }
        count += 1
    }
}

extension DescriptorBuffer {
    /// Fills unused inline slots; never visible through `DescriptorList`.
    static let placeholder = DescriptorBuffer(address: GuestAddress(0), length: 0, writable: false,
                                              host: UnsafeMutableRawPointer(bitPattern: 1)!)
}
