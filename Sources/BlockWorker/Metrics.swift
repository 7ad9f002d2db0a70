import VirtioCore
import IPC

/// Per-device counters, shared by every queue thread and — through a metrics page (a
/// memfd passed with `--metrics-fd`) — with the VMM, which reads them for `--metrics`.
/// Relaxed atomic adds: each counter is independent, readers need eventually-consistent
/// totals. Without a page from the VMM the counters live in a private one.
final class Metrics: Sendable {
    static let names = [
        "requests_read", "requests_write", "requests_flush", "requests_get_id", "requests_discard",
        "requests_write_zeroes", "requests_unknown", "bytes_read", "bytes_written", "errors_io",
        "errors_unsupported", "errors_malformed_chain", "errors_broken_ring", "resubmitted", "kicks", "batches", "interrupts",
        "faults_injected",
    ]

    /// Completed requests by type, plus those of an unknown type.
    let readRequests, writeRequests, flushRequests, getIDRequests, discardRequests,
        writeZeroesRequests, unknownRequests: MetricsPage.Counter
    /// Bytes moved between the image and guest memory.
    let bytesRead, bytesWritten: MetricsPage.Counter
    /// Requests completed with VIRTIO_BLK_S_IOERR / VIRTIO_BLK_S_UNSUPP.
    let ioErrors, unsupported: MetricsPage.Counter
    /// Chains that could not be parsed at all (returned with used len 0).
    let malformedChains: MetricsPage.Counter
    /// Queues stopped because their ring was broken.
    let brokenRings: MetricsPage.Counter
    /// Requests a previous worker left in flight, resubmitted from the inflight buffer.
    let resubmitted: MetricsPage.Counter
    /// Kick eventfd wake-ups, batches processed, and used-buffer notifications sent.
    let kicks, batches, interrupts: MetricsPage.Counter
    /// Faults injected with `--fault` (failed, delayed requests; a crash).
    let faultsInjected: MetricsPage.Counter
    private let page: MetricsPage?

    /// Counters in `page` (the VMM's), or in a private page.
    init(page given: MetricsPage? = nil) {
        page = given ?? (try? MetricsPage.create())
        let c = page.flatMap { try? $0.register(Self.names) } ?? MetricsPage.Counter.detached(count: Self.names.count)
        (readRequests, writeRequests, flushRequests, getIDRequests, discardRequests, writeZeroesRequests, unknownRequests)
            = (c[0], c[1], c[2], c[3], c[4], c[5], c[6])
        (bytesRead, bytesWritten, ioErrors, unsupported, malformedChains, brokenRings) = (c[7], c[8], c[9], c[10], c[11], c[12])
        resubmitted = c[13]
        (kicks, batches, interrupts) = (c[14], c[15], c[16])
        faultsInjected = c[17]
    }

    func count(_ type: RequestType?) {
        switch type {
        case .in?: readRequests.add()
        case .out?: writeRequests.add()
        case .flush?: flushRequests.add()
        case .getID?: getIDRequests.add()
        case .discard?: discardRequests.add()
        case .writeZeroes?: writeZeroesRequests.add()
        case nil: unknownRequests.add()
        }
    }

    func count(_ status: BlockStatus) {
        switch status {
        case .ok: break
        case .ioError: ioErrors.add()
        case .unsupported: unsupported.add()
        }
    }

    /// A snapshot, by name (for tests and the worker's exit line).
    var snapshot: [String: UInt64] {
        let all = [readRequests, writeRequests, flushRequests, getIDRequests, discardRequests, writeZeroesRequests,
                   unknownRequests, bytesRead, bytesWritten, ioErrors, unsupported, malformedChains, brokenRings,
                   resubmitted, kicks, batches, interrupts, faultsInjected]
        return Dictionary(uniqueKeysWithValues: zip(Self.names, all.map(\.value)))
    }
}
