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
        if buffers.isEmpty {
            try offerRaw(queue: index, heads: [head])
        } else {
            try makeAvailable(submission)
        }
        return submission
    }

    /// Makes several heads already written available as a driver re-offers a batch: each
    /// is recorded as in flight (a flag per head, no Submission), then avail.idx is
    /// published once. The device is not notified until `kick(queue:)` or
    /// `kickIfNeeded(queue:)`. Their used entries come back through `waitForUsedRaw` (or
    /// as Completions through `waitForUsed`). Not generic on purpose: an unspecialized
    /// generic across the module boundary costs more than the work.
    public func offerRaw(queue index: Int, heads: [UInt16]) throws(TestFrontendError) {
        try checkQueue(index)
        try offerRawPublished(&queues[index], heads.count) { heads[$0] }
    }

    /// Re-offers the heads of used elements (`waitForUsedRaw`'s output) as `offerRaw(heads:)`.
    public func offerRaw(queue index: Int, used: [UsedElement]) throws(TestFrontendError) {
        try checkQueue(index)
        try offerRawPublished(&queues[index], used.count) { used[$0].head }
    }

    /// Offers `count` heads (`head(i)`) on one queue, then publishes avail.idx once; the
    /// queue is accessed once for the batch (not once per head).
    private func offerRawPublished(_ q: inout DrivenQueue, _ count: Int, _ head: (Int) -> UInt16) throws(TestFrontendError) {
        for i in 0..<count {
            let h = head(i)
            guard h < options.queueSize else { throw .invalidArgument("head \(h) past queue size \(options.queueSize)") }
            q.rawInFlight[Int(h)] = true
            try guestAccess { () throws(MemoryMapError) in try q.ring.offer(head: h) }
        }
        try guestAccess { () throws(MemoryMapError) in try q.ring.publish() }
    }

    /// Waits until at least `count` used entries of raw heads are available on `queue`
    /// (blocking on its call eventfd), then appends every one there is to `used`, in
    /// used-ring order, and returns how many it appended. Each id is checked against the
    /// heads in flight, as `waitForUsed` does; used entries of submitted chains are kept
    /// for `waitForUsed`.
    @discardableResult
    public func waitForUsedRaw(queue index: Int, count: Int = 1, into used: inout [UsedElement],
                               timeout seconds: Double = 5) throws(TestFrontendError) -> Int {
        try checkQueue(index)
        var got = 0
        try waitUntil(queue: index, timeout: seconds, waitedFor: count, got: { got }) { () throws(TestFrontendError) in
            got += try queues[index].collectRaw(queue: index, into: &used)
            return got >= count
        }
        return got
    }

    /// The queue's ring itself, for anything else a misbehaving driver might do
    /// (`setAvailIndex` past the ring size, avail flags, reading used flags...).
    public func withRing<R>(queue index: Int, _ body: (inout DriverQueue) throws(MemoryMapError) -> R) throws(TestFrontendError) -> R {
        try checkQueue(index)
        return try guestAccess { () throws(MemoryMapError) in try body(&queues[index].ring) }
    }
}
