import IPC

/// What the test frontend asks of a back-end.
public struct TestFrontendOptions: Sendable {
    /// Guest RAM: one memfd region at guest address 0. Rings sit at the bottom, the
    /// rest is the buffer pool.
    public var memorySize: UInt64 = 64 << 20
    /// Queues to set up (at most what GET_QUEUE_NUM reports when MQ is offered).
    public var queueCount: Int = 1
    /// Ring size of every queue (a power of two, at most 32768).
    public var queueSize: UInt16 = 256
    /// Virtio features to ack, intersected with those offered. EVENT_IDX is governed by
    /// `eventIdx` instead, and bits the frontend cannot drive are never acked.
    public var features: UInt64 = ~0
    /// Ack VIRTIO_RING_F_EVENT_IDX (if offered) and drive used_event accordingly.
    public var eventIdx: Bool = false
    /// Protocol features to ack, intersected with those offered. With INFLIGHT_SHMFD
    /// acked the frontend does GET_INFLIGHT_FD / SET_INFLIGHT_FD as QEMU does.
    public var protocolFeatures: UInt64 = .protocolFeatures(.replyAck, .config, .mq, .inflightShmfd)

    public init(memorySize: UInt64 = 64 << 20, queueCount: Int = 1, queueSize: UInt16 = 256,
                features: UInt64 = ~0, eventIdx: Bool = false,
                protocolFeatures: UInt64 = .protocolFeatures(.replyAck, .config, .mq, .inflightShmfd)) {
        self.memorySize = memorySize
        self.queueCount = queueCount
        self.queueSize = queueSize
        self.features = features
        self.eventIdx = eventIdx
        self.protocolFeatures = protocolFeatures
    }
}
