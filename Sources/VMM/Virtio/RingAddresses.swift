import VirtioCore

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
        (try memory.hostAddress(descriptorTable, SplitRingLayout.descriptorTableSize(size)),
         try memory.hostAddress(usedRing, SplitRingLayout.usedRingSize(size)),
         try memory.hostAddress(availableRing, SplitRingLayout.availableRingSize(size)))
    }
}
