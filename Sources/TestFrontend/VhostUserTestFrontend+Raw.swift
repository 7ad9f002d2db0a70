import VirtioCore

// Raw ring access for malformed-input tests: write any descriptor (a bad `next`, a loop,
// an address outside guest memory, a nested indirect table...) and offer any head.
extension VhostUserTestFrontend {
    /// Takes `count` descriptor slots out of the frontend's allocation so raw descriptors
    /// written there are never overwritten by `submit`. They are not given back.
    public func reserveDescriptors(queue index: Int, count: Int) throws(TestFrontendError) -> [UInt16] {
        try checkQueue(index)
        return try takeDescriptors(queue: index, count: count)
    }

    /// Writes one descriptor as is into the queue's table (or into `table`, an indirect one).
    public func writeRawDescriptor(queue index: Int, slot: UInt16, address: GuestAddress, length: UInt32,
                                   flags: DescriptorFlags, next: UInt16 = 0, table: GuestAddress? = nil) throws(TestFrontendError) {
        try checkQueue(index)
        try guestAccess { () throws(MemoryMapError) in
            try queues[index].ring.writeDescriptor(index: slot, address: address, length: length, flags: flags, next: next, table: table)
        }
    }

    /// Makes `head` available (and records it as in flight, so a used entry for it is
    /// accepted). `buffers` are freed with the submission; the slots stay reserved.
    @discardableResult
    public func offerRaw(queue index: Int, head: UInt16, buffers: [GuestBuffer] = []) throws(TestFrontendError) -> Submission {
        try checkQueue(index)
        let submission = Submission(queue: index, head: head, buffers: buffers, writable: buffers.map { _ in false },
                                    indirectTable: nil, descriptors: [])
        try makeAvailable(submission)
        return submission
    }

    /// The queue's ring itself, for anything else a misbehaving driver might do
    /// (`setAvailIndex` past the ring size, avail flags, reading used flags...).
    public func withRing<R>(queue index: Int, _ body: (inout DriverQueue) throws(MemoryMapError) -> R) throws(TestFrontendError) -> R {
        try checkQueue(index)
        return try guestAccess { () throws(MemoryMapError) in try body(&queues[index].ring) }
    }
}
