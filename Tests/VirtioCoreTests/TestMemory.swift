import VirtioCore

/// A memfd-backed guest memory with one region at guest address 0.
func makeMemory(size: UInt64 = 1 << 20) throws -> MemoryMap {
    let file = try GuestMemoryFile(size: size)
    return try MemoryMap(frontend: file, regions: [FrontendRegion(guestAddress: GuestAddress(0), size: size, fileOffset: 0)])
}

extension GuestAddress: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt64) { self.init(value) }
}
