import IPC

/// Per queue pair counters. Each pair's thread owns its copy (under the pair lock);
/// `NetDevice.metrics()` sums them.
struct Metrics: Equatable, Sendable {
    /// Frames written to the TAP, and their bytes (without the 12-byte virtio_net_hdr).
    var txFrames: UInt64 = 0
    var txBytes: UInt64 = 0
    /// Frames delivered to the guest, and their bytes (without the header).
    var rxFrames: UInt64 = 0
    var rxBytes: UInt64 = 0
    /// TX chains dropped as malformed: shorter than the header, outside guest memory,
    /// looping, too many buffers, or refused by the TAP as invalid (bad GSO header).
    var txDroppedMalformed: UInt64 = 0
    /// TX frames the TAP refused for another reason (interface gone, queue detached).
    var txDroppedTapError: UInt64 = 0
    /// RX chains returned unused because they were malformed (or too small for a header).
    var rxMalformedChains: UInt64 = 0
    /// RX frames read from the TAP but discarded because the guest's buffers went away
    /// (queue stopped while a frame waited for buffers).
    var rxDroppedNoBuffers: UInt64 = 0
    /// RX frames larger than the buffers the guest offers (without MRG_RXBUF: one chain).
    var rxDroppedTooBig: UInt64 = 0
    /// Available-buffer notifications (kick eventfd reads), all queues of the pair.
    var kicks: UInt64 = 0
    /// Used-buffer notifications sent (call eventfd writes).
    var interrupts: UInt64 = 0
    /// Faults injected with `--fault` (frames dropped or corrupted; a crash).
    var faultsInjected: UInt64 = 0

    static func + (a: Metrics, b: Metrics) -> Metrics {
        var s = a
        s.txFrames += b.txFrames; s.txBytes += b.txBytes
        s.rxFrames += b.rxFrames; s.rxBytes += b.rxBytes
        s.txDroppedMalformed += b.txDroppedMalformed; s.txDroppedTapError += b.txDroppedTapError
        s.rxMalformedChains += b.rxMalformedChains; s.rxDroppedNoBuffers += b.rxDroppedNoBuffers
        s.rxDroppedTooBig += b.rxDroppedTooBig
        s.kicks += b.kicks; s.interrupts += b.interrupts
        s.faultsInjected += b.faultsInjected
        return s
    }

    /// One line, `key=value` pairs.
    var line: String {
        "tx_frames=\(txFrames) tx_bytes=\(txBytes) rx_frames=\(rxFrames) rx_bytes=\(rxBytes) "
            + "tx_dropped_malformed=\(txDroppedMalformed) tx_dropped_tap_error=\(txDroppedTapError) "
            + "rx_malformed_chains=\(rxMalformedChains) rx_dropped_no_buffers=\(rxDroppedNoBuffers) "
            + "rx_dropped_too_big=\(rxDroppedTooBig) kicks=\(kicks) interrupts=\(interrupts) faults_injected=\(faultsInjected)"
    }
}

extension Metrics {
    static let names = [
        "tx_frames", "tx_bytes", "rx_frames", "rx_bytes", "tx_dropped_malformed", "tx_dropped_tap_error",
        "rx_malformed_chains", "rx_dropped_no_buffers", "rx_dropped_too_big", "kicks", "interrupts",
        "faults_injected",
    ]
}

/// Mirrors the pairs' counters into the VMM's metrics page (`--metrics-fd`): each pair
/// thread adds what changed since its last publish, after each loop iteration.
final class MetricsPublisher: Sendable {
    private let counters: [MetricsPage.Counter]
    private let page: MetricsPage

    init(page: MetricsPage) throws {
        self.page = page
        counters = try page.register(Metrics.names)
    }

    /// Runs after every loop iteration of a pair thread: field by field, no allocation.
    func publish(_ now: Metrics, since last: inout Metrics) {
        guard now != last else { return }
        add(0, now.txFrames, last.txFrames); add(1, now.txBytes, last.txBytes)
        add(2, now.rxFrames, last.rxFrames); add(3, now.rxBytes, last.rxBytes)
        add(4, now.txDroppedMalformed, last.txDroppedMalformed); add(5, now.txDroppedTapError, last.txDroppedTapError)
        add(6, now.rxMalformedChains, last.rxMalformedChains); add(7, now.rxDroppedNoBuffers, last.rxDroppedNoBuffers)
        add(8, now.rxDroppedTooBig, last.rxDroppedTooBig); add(9, now.kicks, last.kicks)
        add(10, now.interrupts, last.interrupts); add(11, now.faultsInjected, last.faultsInjected)
        last = now
    }

    private func add(_ index: Int, _ now: UInt64, _ last: UInt64) {
        if now != last { counters[index].add(now &- last) }
    }
}
