import Synchronization

/// Per-device counters, shared by every queue thread (relaxed atomics: each counter is
/// independent, and readers only need eventually-consistent totals). Exposing them
/// (to the VMM, or a metrics endpoint) comes in a later issue; they are kept from now on.
final class Metrics: Sendable {
    /// Completed requests by type, plus those of an unknown type.
    let readRequests = Atomic<UInt64>(0)
    let writeRequests = Atomic<UInt64>(0)
    let flushRequests = Atomic<UInt64>(0)
    let getIDRequests = Atomic<UInt64>(0)
    let discardRequests = Atomic<UInt64>(0)
    let writeZeroesRequests = Atomic<UInt64>(0)
    let unknownRequests = Atomic<UInt64>(0)

    /// Bytes moved between the image and guest memory.
    let bytesRead = Atomic<UInt64>(0)
    let bytesWritten = Atomic<UInt64>(0)

    /// Requests completed with VIRTIO_BLK_S_IOERR / VIRTIO_BLK_S_UNSUPP.
    let ioErrors = Atomic<UInt64>(0)
    let unsupported = Atomic<UInt64>(0)
    /// Chains that could not be parsed at all (returned with used len 0).
    let malformedChains = Atomic<UInt64>(0)
    /// Queues stopped because their ring was broken.
    let brokenRings = Atomic<UInt64>(0)
    /// Requests a previous worker left in flight, resubmitted from the inflight buffer.
    let resubmitted = Atomic<UInt64>(0)

    /// Kick eventfd wake-ups, batches processed, and used-buffer notifications sent.
    let kicks = Atomic<UInt64>(0)
    let batches = Atomic<UInt64>(0)
    let interrupts = Atomic<UInt64>(0)

    init() {}

    func count(_ type: RequestType?) {
        switch type {
        case .in?: readRequests.add(1, ordering: .relaxed)
        case .out?: writeRequests.add(1, ordering: .relaxed)
        case .flush?: flushRequests.add(1, ordering: .relaxed)
        case .getID?: getIDRequests.add(1, ordering: .relaxed)
        case .discard?: discardRequests.add(1, ordering: .relaxed)
        case .writeZeroes?: writeZeroesRequests.add(1, ordering: .relaxed)
        case nil: unknownRequests.add(1, ordering: .relaxed)
        }
    }

    func count(_ status: BlockStatus) {
        switch status {
        case .ok: break
        case .ioError: ioErrors.add(1, ordering: .relaxed)
        case .unsupported: unsupported.add(1, ordering: .relaxed)
        }
    }

    /// A snapshot, by name (for tests and, later, the metrics endpoint).
    var snapshot: [String: UInt64] {
        [
            "requests_read": readRequests.load(ordering: .relaxed),
            "requests_write": writeRequests.load(ordering: .relaxed),
            "requests_flush": flushRequests.load(ordering: .relaxed),
            "requests_get_id": getIDRequests.load(ordering: .relaxed),
            "requests_discard": discardRequests.load(ordering: .relaxed),
            "requests_write_zeroes": writeZeroesRequests.load(ordering: .relaxed),
            "requests_unknown": unknownRequests.load(ordering: .relaxed),
            "bytes_read": bytesRead.load(ordering: .relaxed),
            "bytes_written": bytesWritten.load(ordering: .relaxed),
            "errors_io": ioErrors.load(ordering: .relaxed),
            "errors_unsupported": unsupported.load(ordering: .relaxed),
            "errors_malformed_chain": malformedChains.load(ordering: .relaxed),
            "errors_broken_ring": brokenRings.load(ordering: .relaxed),
            "resubmitted": resubmitted.load(ordering: .relaxed),
            "kicks": kicks.load(ordering: .relaxed),
            "batches": batches.load(ordering: .relaxed),
            "interrupts": interrupts.load(ordering: .relaxed),
        ]
    }
}
