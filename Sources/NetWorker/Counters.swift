import WorkerCore

/// volt-net-worker's counters (after the framework's kicks, interrupts,
/// errors_broken_ring, resubmitted and faults_injected), as the VMM's `--metrics` shows them.
enum NetCounter: Int, DeviceCounter {
    /// Frames written to the TAP, and their bytes (without the 12-byte virtio_net_hdr).
    case txFrames, txBytes
    /// Frames delivered to the guest, and their bytes (without the header).
    case rxFrames, rxBytes
    /// TX chains dropped as malformed: shorter than the header, outside guest memory,
    /// looping, too many buffers, or refused by the TAP as invalid (bad GSO header).
    case txDroppedMalformed
    /// TX frames the TAP refused for another reason (interface gone, queue detached).
    case txDroppedTapError
    /// RX chains returned unused because they were malformed (or too small for a header).
    case rxMalformedChains
    /// RX frames read from the TAP but discarded because the guest's buffers went away
    /// (queue stopped while a frame waited for buffers).
    case rxDroppedNoBuffers
    /// RX frames larger than the buffers the guest offers (without MRG_RXBUF: one chain).
    case rxDroppedTooBig
    /// Control-queue chains refused as malformed.
    case controlMalformed
}

/// One pair thread's counts during a turn of its loop: plain fields the data path bumps
/// (no array, no shared memory), moved into the thread's `Counters` after each turn.
struct NetStats {
    var txFrames: UInt64 = 0, txBytes: UInt64 = 0, rxFrames: UInt64 = 0, rxBytes: UInt64 = 0
    var txDroppedMalformed: UInt64 = 0, txDroppedTapError: UInt64 = 0
    var rxMalformedChains: UInt64 = 0, rxDroppedNoBuffers: UInt64 = 0, rxDroppedTooBig: UInt64 = 0
    var controlMalformed: UInt64 = 0
    var interrupts: UInt64 = 0, faultsInjected: UInt64 = 0

    /// Adds everything to `counters` and starts again from zero.
    mutating func move(into counters: inout Counters) {
        counters.add(NetCounter.txFrames, txFrames); counters.add(NetCounter.txBytes, txBytes)
        counters.add(NetCounter.rxFrames, rxFrames); counters.add(NetCounter.rxBytes, rxBytes)
        counters.add(NetCounter.txDroppedMalformed, txDroppedMalformed)
        counters.add(NetCounter.txDroppedTapError, txDroppedTapError)
        counters.add(NetCounter.rxMalformedChains, rxMalformedChains)
        counters.add(NetCounter.rxDroppedNoBuffers, rxDroppedNoBuffers)
        counters.add(NetCounter.rxDroppedTooBig, rxDroppedTooBig)
        counters.add(NetCounter.controlMalformed, controlMalformed)
        counters.interrupts &+= interrupts
        counters.faultsInjected &+= faultsInjected
        self = NetStats()
    }
}
