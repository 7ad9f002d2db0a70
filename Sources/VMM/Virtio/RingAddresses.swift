extension GuestMemory {
    /// volt-vmm's virtual address of `length` guest bytes at `guestAddress` (bounds-checked):
    /// how vhost backends are told where a ring is.
    func hostAddress(_ guestAddress: UInt64, _ length: UInt64) throws -> UInt64 {
        UInt64(UInt(bitPattern: try buffer(at: guestAddress, length: length).baseAddress))
    }
}

extension VirtqueueConfig {
    /// volt-vmm's virtual addresses of the ring's descriptor table, used ring and available
    /// ring (bounds-checked): what SET_VRING_ADDR tells a vhost backend, user space or kernel.
    func hostAddresses(in memory: GuestMemory) throws -> (descriptors: UInt64, used: UInt64, available: UInt64) {
        let n = UInt64(size)
        return (try memory.hostAddress(descriptorTable, 16 * n), try memory.hostAddress(usedRing, 6 + 8 * n),
                try memory.hostAddress(availableRing, 6 + 2 * n))
    }
}
