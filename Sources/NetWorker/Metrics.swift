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

    static func + (a: Metrics, b: Metrics) -> Metrics {
        var s = a
        s.txFrames += b.txFrames; s.txBytes += b.txBytes
        s.rxFrames += b.rxFrames; s.rxBytes += b.rxBytes
        s.txDroppedMalformed += b.txDroppedMalformed; s.txDroppedTapError += b.txDroppedTapError
        s.rxMalformedChains += b.rxMalformedChains; s.rxDroppedNoBuffers += b.rxDroppedNoBuffers
        s.rxDroppedTooBig += b.rxDroppedTooBig
        s.kicks += b.kicks; s.interrupts += b.interrupts
        return s
    }

    /// One line, `key=value` pairs.
    var line: String {
        "tx_frames=\(txFrames) tx_bytes=\(txBytes) rx_frames=\(rxFrames) rx_bytes=\(rxBytes) "
            + "tx_dropped_malformed=\(txDroppedMalformed) tx_dropped_tap_error=\(txDroppedTapError) "
            + "rx_malformed_chains=\(rxMalformedChains) rx_dropped_no_buffers=\(rxDroppedNoBuffers) "
            + "rx_dropped_too_big=\(rxDroppedTooBig) kicks=\(kicks) interrupts=\(interrupts)"
    }
}
