import VirtioCore

/// The driver-side state of one queue: the ring, which descriptor slots are free,
/// what is in flight under each head, used entries read but not yet handed out,
/// and the kick/call eventfds the frontend owns.
struct DrivenQueue {
    var ring: DriverQueue
    var freeDescriptors: [UInt16]
    var inFlight: [UInt16: Submission] = [:]
    /// Used entries read off the ring and not yet returned to the caller, in used order.
    var completed: [Completion] = []
    let kick: EventFD
    let call: EventFD
    var started = false

    init(ring: DriverQueue) throws(TestFrontendError) {
        self.ring = ring
        // Popped from the end: hand out 0, 1, 2... first.
        freeDescriptors = (0..<ring.size).reversed()
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
        while true {
            let entry: (id: UInt32, length: UInt32)?
            do { entry = try ring.popUsed() } catch { throw .memory(error) }
            guard let entry else { return }
            guard entry.id < UInt32(ring.size), let submission = inFlight.removeValue(forKey: UInt16(entry.id)) else {
                throw .unknownUsedHead(queue: queue, id: entry.id)
            }
            freeDescriptors.append(contentsOf: submission.descriptors)
            completed.append(Completion(submission: submission, length: entry.length))
        }
    }
}
