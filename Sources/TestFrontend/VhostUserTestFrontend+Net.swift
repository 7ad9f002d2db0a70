import VirtioCore

// virtio-net on top of the generic queue calls (virtio 1.2, 5.1): queue 2n receives,
// 2n+1 transmits. Feature bits: VirtioCore's `NetFeature`.
extension VhostUserTestFrontend {
    /// Room for a 1514-byte frame after the header without MRG_RXBUF.
    public static let defaultReceiveBufferSize: UInt32 = 1526

    public var mergeableRxBuffers: Bool { negotiatedFeatures & NetFeature.mrgRxbuf != 0 }

    /// The MAC in config space (bytes 0-5; meaningful with VIRTIO_NET_F_MAC).
    public func netMAC() throws(TestFrontendError) -> [UInt8] { try config(size: 6) }

    /// Queues one frame for transmission and kicks: header and frame as two descriptors,
    /// or one when `separateHeader` is false (both layouts are legal, 5.1.6.6).
    @discardableResult
    public func transmit(_ frame: [UInt8], header: VirtioNetHeader = VirtioNetHeader(), queue: Int = 1,
                         separateHeader: Bool = true, indirect: Bool = false) throws(TestFrontendError) -> Submission {
        let chain: [BufferSpec] = separateHeader ? [.readable(header.bytes), .readable(frame)] : [.readable(header.bytes + frame)]
        let submission = try submit(queue: queue, chain, indirect: indirect)
        try kick(queue: queue)
        return submission
    }

    /// Posts `count` writable RX buffers of `length` bytes each and kicks.
    @discardableResult
    public func postReceiveBuffers(count: Int, length: UInt32 = defaultReceiveBufferSize,
                                   queue: Int = 0) throws(TestFrontendError) -> [Submission] {
        let posted = try (0..<count).map { _ throws(TestFrontendError) in try submit(queue: queue, [.writable(length)]) }
        try kick(queue: queue)
        return posted
    }

    /// Waits for RX buffers until `count` packets are complete, releasing each buffer
    /// after reading it. A packet still missing buffers stays in `receiver`.
    public func receive(_ count: Int, into receiver: inout VirtioNetReceiver, queue: Int = 0,
                        timeout: Double = 5) throws(TestFrontendError) -> [ReceivedPacket] {
        var packets: [ReceivedPacket] = []
        while packets.count < count {
            for completion in try waitForUsed(queue: queue, timeout: timeout) {
                defer { release(completion) }
                guard let buffer = completion.submission.buffers.first, completion.submission.buffers.count == 1 else {
                    throw .invalidArgument("head \(completion.head) is not a single RX buffer")
                }
                guard completion.length <= buffer.length else {
                    throw .malformedReply("used length \(completion.length) exceeds the \(buffer.length)-byte RX buffer")
                }
                if let packet = try receiver.add(try read(buffer, count: Int(completion.length))) { packets.append(packet) }
            }
        }
        return packets
    }
}
