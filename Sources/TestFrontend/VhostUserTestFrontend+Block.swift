import VirtioCore

// virtio-blk on top of the generic queue calls: one call per request for short tests,
// or submit / result(of:) for several in flight.
extension VhostUserTestFrontend {
    public func blockConfig() throws(TestFrontendError) -> VirtioBlockConfig {
        let bytes = try config(size: VirtioBlockConfig.size)
        guard let config = VirtioBlockConfig(bytes) else { throw .malformedReply("config of \(bytes.count) bytes") }
        return config
    }

    /// Submits a request's chain (not kicked).
    @discardableResult
    public func submit(queue: Int = 0, _ request: VirtioBlockRequest, indirect: Bool = false) throws(TestFrontendError) -> Submission {
        try submit(queue: queue, request.chain, indirect: indirect)
    }

    /// Reads status and data of a completed request and releases its buffers.
    public func blockResult(of completion: Completion) throws(TestFrontendError) -> VirtioBlockResult {
        let s = completion.submission
        defer { release(s) }
        guard s.buffers.count >= 2, let status = s.buffers.last, s.writable.last == true else {
            throw .invalidArgument("head \(s.head) is not a block request")
        }
        var data: [UInt8] = []
        for (buffer, writable) in zip(s.buffers.dropFirst().dropLast(), s.writable.dropFirst().dropLast()) where writable {
            data += try read(buffer)
        }
        return VirtioBlockResult(status: VirtioBlockStatus(try read(status)[0]), data: data, usedLength: completion.length)
    }

    /// Submit, kick, wait for this request, return its result.
    public func perform(_ request: VirtioBlockRequest, queue: Int = 0, indirect: Bool = false,
                        timeout: Double = 5) throws(TestFrontendError) -> VirtioBlockResult {
        let submission = try submit(queue: queue, request, indirect: indirect)
        try kick(queue: queue)
        return try blockResult(of: try waitForCompletion(of: submission, timeout: timeout))
    }
}
