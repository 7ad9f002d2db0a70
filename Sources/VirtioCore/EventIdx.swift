import CShim

/// True if moving the used (or avail) index from `old` to `new` passed `event`,
/// i.e. the entry at index `event` was written in this step. All 16-bit, wrapping
/// (virtio 1.2, 2.7.7.2 and 2.7.10; vring_need_event in virtio_ring.h).
public func vringNeedEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
    (new &- event &- 1) < (new &- old)
}

/// Notification suppression, both directions (virtio 1.2, 2.7.7 and 2.7.10).
extension Virtqueue {
    /// Whether to send a used buffer notification for entries published since the last
    /// call. Call after `publishUsed()`.
    public mutating func needsNotification() -> Bool {
        // used.idx must be visible before reading the driver's suppression field,
        // or a notification can be lost (store->load ordering: full fence).
        volt_fence_full()
        let old = signalledUsed
        let new = publishedUsed
        signalledUsed = new
        guard new != old else { return false }
        if eventIdx {
            // 2.7.7.2 with EVENT_IDX: notify when the entry at used_event was written;
            // ignore the flags field.
            let usedEvent = UInt16(littleEndian: volt_load_u16(avail + SplitRingLayout.usedEventOffset(size)))
            return vringNeedEvent(event: usedEvent, new: new, old: old)
        }
        // 2.7.7.2 without EVENT_IDX: flags 1 (NO_INTERRUPT) means SHOULD NOT notify.
        let flags = UInt16(littleEndian: volt_load_u16(avail + SplitRingLayout.flagsOffset))
        return flags & SplitRingLayout.availNoInterrupt == 0
    }

    /// Asks the driver for available buffer notifications again: with EVENT_IDX,
    /// avail_event = nextAvail ("kick me when you write the entry at nextAvail");
    /// without, clear NO_NOTIFY in used.flags (2.7.10). Returns true if buffers
    /// arrived meanwhile: the caller must then pop again, as no kick may come for them.
    public mutating func enableNotifications() throws(VirtqueueError) -> Bool {
        if eventIdx {
            setAvailEvent(nextAvail)
        } else {
            volt_store_u16(used + SplitRingLayout.flagsOffset, UInt16(0).littleEndian)
        }
        // The write must be visible before re-reading avail.idx.
        volt_fence_full()
        return try pendingCount() > 0
    }

    /// Asks the driver not to notify while the device is busy polling. With EVENT_IDX
    /// the device keeps flags 0 (2.7.10) and simply leaves avail_event behind.
    public func disableNotifications() {
        guard !eventIdx else { return }
        volt_store_u16(used + SplitRingLayout.flagsOffset, SplitRingLayout.usedNoNotify.littleEndian)
    }

    /// Writes avail_event in the used ring (EVENT_IDX only; 2.7.10).
    public func setAvailEvent(_ index: UInt16) {
        volt_store_u16(used + SplitRingLayout.availEventOffset(size), index.littleEndian)
    }
}
