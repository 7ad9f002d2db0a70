import CShim

/// Returning buffers through the used ring (virtio 1.2, 2.7.8).
extension Virtqueue {
    /// Writes one used element {id, len} without publishing it: batch several, then
    /// `publishUsed()` once. `length` is the number of bytes written into the chain's
    /// writable buffers (2.7.8.2: set before used.idx is updated).
    public mutating func stageUsed(head: UInt16, length: UInt32) throws(VirtqueueError) {
        guard head < size else { throw .usedHeadOutOfRange(head) }
        // Never overwrite an entry the driver may not have seen yet.
        guard stagedUsed &- publishedUsed < size else { throw .usedRingOverflow }
        let slot = Int(stagedUsed & (size - 1))
        let entry = used + SplitRingLayout.usedEntryOffset(slot)
        entry.storeBytes(of: UInt32(head).littleEndian, as: UInt32.self)
        entry.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
        stagedUsed &+= 1
    }

    /// Makes staged elements visible: release fence, then used.idx (2.7.8.2, 2.7.14).
    public mutating func publishUsed() {
        guard stagedUsed != publishedUsed else { return }
        volt_fence_release()
        volt_store_u16(used + SplitRingLayout.indexOffset, stagedUsed.littleEndian)
        publishedUsed = stagedUsed
    }

    /// `stageUsed` and `publishUsed` in one.
    public mutating func addUsed(head: UInt16, length: UInt32) throws(VirtqueueError) {
        try stageUsed(head: head, length: length)
        publishUsed()
    }
}
