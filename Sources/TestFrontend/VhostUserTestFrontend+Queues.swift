import CShim
import VirtioCore

// Driving the rings: submit chains, kick, wait for used entries, and move bytes in and
// out of the guest buffers behind them.
extension VhostUserTestFrontend {
    /// Places `chain` in freshly allocated guest buffers, writes its descriptors (directly,
    /// or as one indirect table when `indirect` is set) and makes the head available.
    /// The device is not notified until `kick(queue:)`.
    @discardableResult
    public func submit(queue index: Int, _ chain: [BufferSpec], indirect: Bool = false) throws(TestFrontendError) -> Submission {
        try checkQueue(index)
        guard !chain.isEmpty else { throw .invalidArgument("empty chain") }
        if indirect && !indirectDescriptors { throw .unsupported("VIRTIO_RING_F_INDIRECT_DESC not negotiated") }
        guard indirect || chain.count <= Int(options.queueSize) else {
            throw .invalidArgument("chain of \(chain.count) exceeds queue size \(options.queueSize)")
        }
        var buffers: [GuestBuffer] = []
        var table: GuestBuffer?
        do {
            for spec in chain {
                let buffer = try allocate(spec.length)
                buffers.append(buffer)
                switch spec {
                case let .readable(bytes): try write(bytes, to: buffer)
                case let .writable(length): try guestAccess { () throws(MemoryMapError) in try memory.buffer(at: buffer.address, length: UInt64(length)) }
                    .initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
            if indirect { table = try allocate(UInt32(16 * chain.count)) }
            let slots = try takeDescriptors(queue: index, count: indirect ? 1 : chain.count)
            // Direct: the chain links through `slots`. Indirect: entries 0..n-1 of the table.
            let links = table == nil ? slots : chain.indices.map { UInt16($0) }
            for i in chain.indices {
                let last = i == chain.count - 1
                var flags: DescriptorFlags = chain[i].isWritable ? .write : []
                if !last { flags.insert(.next) }
                try guestAccess { () throws(MemoryMapError) in
                    try queues[index].ring.writeDescriptor(index: links[i], address: buffers[i].address, length: buffers[i].length,
                                                           flags: flags, next: last ? 0 : links[i + 1], table: table?.address)
                }
            }
            if let table {
                try guestAccess { () throws(MemoryMapError) in
                    try queues[index].ring.writeDescriptor(index: slots[0], address: table.address, length: table.length, flags: .indirect)
                }
            }
            let submission = Submission(queue: index, head: slots[0], buffers: buffers, writable: chain.map(\.isWritable),
                                        indirectTable: table, descriptors: slots)
            try makeAvailable(submission)
            return submission
        } catch {
            for b in buffers { allocator.release(b) }
            if let table { allocator.release(table) }
            throw error
        }
    }

    /// Offers and publishes a head already written, recording it as in flight.
    func makeAvailable(_ submission: Submission) throws(TestFrontendError) {
        queues[submission.queue].inFlight[submission.head] = submission
        try guestAccess { () throws(MemoryMapError) in
            try queues[submission.queue].ring.offer(head: submission.head)
            try queues[submission.queue].ring.publish()
        }
    }

    func takeDescriptors(queue index: Int, count: Int) throws(TestFrontendError) -> [UInt16] {
        guard let slots = queues[index].takeDescriptors(count) else {
            throw .invalidArgument("queue \(index): \(count) descriptors wanted, \(queues[index].freeDescriptors.count) free")
        }
        return slots
    }

    /// Notifies the device (writes the queue's kick eventfd). Always kicks, even when
    /// EVENT_IDX or VIRTQ_USED_F_NO_NOTIFY say it is not needed: a spurious kick is legal.
    public func kick(queue index: Int) throws(TestFrontendError) {
        try checkQueue(index)
        try queues[index].kick.signal()
    }

    /// Notifies the device only if it asked to be (what a Linux guest's
    /// virtqueue_kick_prepare decides, 2.7.13.4): with EVENT_IDX, if avail.idx moved past
    /// avail_event since the last decision; without, unless used.flags has NO_NOTIFY.
    /// Returns whether it kicked.
    @discardableResult
    public func kickIfNeeded(queue index: Int) throws(TestFrontendError) -> Bool {
        try checkQueue(index)
        // avail.idx (published) must be visible before reading the device's field.
        volt_fence_full()
        let new = queues[index].ring.availIndex
        let old = queues[index].kickedAvail
        queues[index].kickedAvail = new
        let needed = try guestAccess { () throws(MemoryMapError) -> Bool in
            if eventIdx { return vringNeedEvent(event: try queues[index].ring.availEvent(), new: new, old: old) }
            return try queues[index].ring.usedFlags() & SplitRingLayout.usedNoNotify == 0
        }
        if needed { try queues[index].kick.signal() }
        return needed
    }

    /// Heads submitted on `queue` and not yet used.
    public func inFlight(queue index: Int) throws(TestFrontendError) -> [Submission] {
        try checkQueue(index)
        let raw = queues[index].rawInFlight.indices.filter { queues[index].rawInFlight[$0] }.map {
            Submission(queue: index, head: UInt16($0), buffers: [], writable: [], indirectTable: nil, descriptors: [])
        }
        return (Array(queues[index].inFlight.values) + raw).sorted { $0.head < $1.head }
    }

    /// Waits until at least `count` used entries are available on `queue` (blocking on its
    /// call eventfd with poll), then returns all that are, in used-ring order. Entries
    /// read earlier by `waitForCompletion` and not yet returned come first.
    public func waitForUsed(queue index: Int, count: Int = 1, timeout seconds: Double = 5) throws(TestFrontendError) -> [Completion] {
        try checkQueue(index)
        try waitUntil(queue: index, timeout: seconds, waitedFor: count, got: { queues[index].completed.count }) { () throws(TestFrontendError) in
            try queues[index].collect(queue: index)
            return queues[index].completed.count >= count
        }
        defer { queues[index].completed.removeAll() }
        return queues[index].completed
    }

    /// Waits for one particular submission; other completions read meanwhile are kept
    /// for the next `waitForUsed`.
    public func waitForCompletion(of submission: Submission, timeout seconds: Double = 5) throws(TestFrontendError) -> Completion {
        let index = submission.queue
        try checkQueue(index)
        try waitUntil(queue: index, timeout: seconds, waitedFor: 1, got: { queues[index].completed.count }) { () throws(TestFrontendError) in
            try queues[index].collect(queue: index)
            return queues[index].completed.contains { $0.head == submission.head && $0.submission == submission }
        }
        let i = queues[index].completed.firstIndex { $0.submission == submission }!
        return queues[index].completed.remove(at: i)
    }

    /// Collects and checks with `ready` (which reads used entries off the ring) until it
    /// says done, blocking on the call eventfd in between. `got` reports progress in the
    /// timeout error.
    func waitUntil(queue index: Int, timeout seconds: Double, waitedFor: Int, got: () -> Int,
                   _ ready: () throws(TestFrontendError) -> Bool) throws(TestFrontendError) {
        let deadline = volt_monotonic_ns() &+ UInt64(max(seconds, 0) * 1e9)
        while true {
            if try ready() { return }
            if eventIdx {
                // "Interrupt me when you write the used entry at lastUsed" (2.7.10), then
                // re-check: the device may have used it before seeing used_event.
                try guestAccess { () throws(MemoryMapError) in try queues[index].ring.setUsedEvent(queues[index].ring.lastUsed) }
                volt_fence_full()
                if try ready() { return }
            }
            let now = volt_monotonic_ns()
            let left = now >= deadline ? 0 : Int((deadline - now) / 1_000_000)
            guard left > 0, try queues[index].call.wait(milliseconds: left) else {
                throw .timedOut(queue: index, waitedFor: waitedFor, got: got())
            }
            try queues[index].call.drain()
        }
    }

    // MARK: - Guest buffers

    /// A guest buffer from the pool (for raw descriptors or data the test places itself).
    public func allocate(_ length: UInt32) throws(TestFrontendError) -> GuestBuffer {
        guard let buffer = allocator.allocate(length) else {
            throw .invalidArgument("guest buffer pool exhausted (\(length) bytes wanted, \(allocator.freeBytes) free)")
        }
        return buffer
    }

    public func release(_ buffer: GuestBuffer) { allocator.release(buffer) }

    /// Frees a completed submission's buffers and indirect table.
    public func release(_ submission: Submission) {
        for b in submission.buffers { allocator.release(b) }
        if let t = submission.indirectTable { allocator.release(t) }
    }

    public func release(_ completion: Completion) { release(completion.submission) }

    /// The first `count` bytes (default: all) of a guest buffer.
    public func read(_ buffer: GuestBuffer, count: Int? = nil) throws(TestFrontendError) -> [UInt8] {
        let n = min(count ?? Int(buffer.length), Int(buffer.length))
        return try guestAccess { () throws(MemoryMapError) in try memory.read(at: buffer.address, count: n) }
    }

    /// Overwrites the start of a guest buffer.
    public func write(_ bytes: [UInt8], to buffer: GuestBuffer) throws(TestFrontendError) {
        guard bytes.count <= Int(buffer.length) else { throw .invalidArgument("\(bytes.count) bytes into a \(buffer.length)-byte buffer") }
        try guestAccess { () throws(MemoryMapError) in try memory.write(bytes, at: buffer.address) }
    }
}

/// Runs a guest-memory access, reporting its failure as a `TestFrontendError`.
func guestAccess<T>(_ body: () throws(MemoryMapError) -> T) throws(TestFrontendError) -> T {
    do { return try body() } catch { throw .memory(error) }
}
