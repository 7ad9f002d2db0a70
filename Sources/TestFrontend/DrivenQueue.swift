import VirtioCore

/// The driver-side state of one queue: the ring, which descriptor slots are free,
/// what is in flight under each head, used entries read but not yet handed out,
/// and the kick/call eventfds the frontend owns.
struct DrivenQueue {
    var ring: DriverQueue
    var freeDescriptors: [UInt16]
    var inFlight: [UInt16: Submission] = [:]
    /// Heads offered raw (`offerRaw` without buffers) and not yet used, by head: a raw
    /// head has nothing to remember but that it is outstanding, so the re-offer path of a
    /// benchmark driver costs no dictionary or Submission (a real driver's is as cheap).
    var rawInFlight: [Bool]
    /// Used entries read off the ring and not yet returned to the caller, in used order.
    var completed: [Completion] = []
    let kick: EventFD
    let call: EventFD
    var started = false
    /// avail.idx when `kickIfNeeded` last decided (vring_need_event's "old").
    var kickedAvail: UInt16 = 0

    init(ring: DriverQueue) throws(TestFrontendError) {
        self.ring = ring
        // Popped from the end: hand out 0, 1, 2... first.
        freeDescriptors = (0..<ring.size).reversed()
        rawInFlight = [Bool](repeating: false, count: Int(ring.size))
        kick = try EventFD()
        call = try EventFD()
    }

    mutating func takeDescriptors(_ count: Int) -> [UInt16]? {
        guard count <= freeDescriptors.count else { return nil }
        return (0..<count).map { _ in freeDescriptors.removeLast() }
    }

    /// Moves every new used entry from the ring to `completed`. An id that is not an
    /// in-flight head is a device bug, reported as such.
    mutating func collect(queue: Int) throws(TestFrontendError) {
        while let (head, length, submission) = try popMatched(queue: queue) {
            let s = submission ?? Submission(queue: queue, head: head, buffers: [], writable: [], indirectTable: nil, descriptors: [])
            completed.append(Completion(submission: s, length: length))
        }
    }

    /// Like `collect`, but raw heads go to `raw` as bare used elements (no Completion);
    /// used entries of submitted chains still go to `completed`, for `waitForUsed`.
    /// Returns the number of raw elements added.
    mutating func collectRaw(queue: Int, into raw: inout [UsedElement]) throws(TestFrontendError) -> Int {
        var added = 0
        while let (head, length, submission) = try popMatched(queue: queue) {
            if let submission {
                completed.append(Completion(submission: submission, length: length))
            } else {
                raw.append(UsedElement(head: head, length: length))
                added += 1
            }
        }
        return added
    }

    /// The next used entry and what was offered under its id: a Submission, or nil for a
    /// raw head. Throws if the id is not in flight (out of range, never offered, or
    /// already used).
    private mutating func popMatched(queue: Int) throws(TestFrontendError) -> (UInt16, UInt32, Submission?)? {
        let entry: (id: UInt32, length: UInt32)?
        do { entry = try ring.popUsed() } catch { throw .memory(error) }
        guard let entry else { return nil }
        guard entry.id < UInt32(ring.size) else { throw .unknownUsedHead(queue: queue, id: entry.id) }
        let head = UInt16(entry.id)
        if rawInFlight[Int(head)] {
            rawInFlight[Int(head)] = false
            return (head, entry.length, nil)
        }
        guard let submission = inFlight.removeValue(forKey: head) else { throw .unknownUsedHead(queue: queue, id: entry.id) }
        freeDescriptors.append(contentsOf: submission.descriptors)
        return (head, entry.length, submission)
    }
}
