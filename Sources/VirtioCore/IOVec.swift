import Glibc

/// iovec arrays over a chain's buffers, for readv/writev/preadv/pwritev. The iovecs
/// point into guest memory: they are valid only while the map of the queue the chain
/// came from is alive.
extension DescriptorChain {
    /// Driver→device buffers, for writev/pwritev (data out of the guest).
    public func readableIovecs() -> [iovec] { iovecs(readableRange) }

    /// Device→driver buffers, for readv/preadv (data into the guest), at most
    /// `limit` bytes in total (the last iovec is shortened).
    public func writableIovecs(limit: UInt32 = .max) -> [iovec] { iovecs(writableRange, limit: limit) }

    /// Runs `body` with the readable or writable iovecs.
    /// The iovecs live on the stack (no heap allocation for chains of typical length).
    @inlinable
    public func withIovecs<R>(writable: Bool, _ body: (UnsafeBufferPointer<iovec>) throws -> R) rethrows -> R {
        try withIovecs(writable: writable, skip: 0, length: UInt64.max, body)
    }

    /// Same, over bytes [skip, skip + length) of the readable or writable part only
    /// (fewer if the part is shorter): e.g. a request's data between header and status.
    /// Inlinable so callers get it specialized (a generic call costs more than the work).
    @inlinable
    public func withIovecs<R>(writable: Bool, skip: UInt64, length: UInt64,
                              _ body: (UnsafeBufferPointer<iovec>) throws -> R) rethrows -> R {
        let part = writable ? writableRange : readableRange
        return try withUnsafeTemporaryAllocation(of: iovec.self, capacity: Swift.max(part.count, 1)) { storage in
            let n = fill(storage, from: part, skip: skip, length: length)
            return try body(UnsafeBufferPointer(rebasing: storage[..<n]))
        }
    }

    /// The first device-writable buffer, where drivers put a header the device fills
    /// (nil if there is none). Inlinable: no copy of the chain for the call.
    @inlinable
    public var firstWritableBuffer: UnsafeMutableRawBufferPointer? {
        guard readableCount < buffers.count else { return nil }
        let b = buffers[readableCount]
        return UnsafeMutableRawBufferPointer(start: b.host, count: Int(b.length))
    }

    /// Writes the iovecs for bytes [skip, skip + length) of the readable or writable part
    /// into `storage` (room for one per buffer of that part); returns how many. For hot
    /// paths with storage of their own: no closure, so the chain is not copied into one.
    @inlinable @inline(__always)
    public func fillIovecs(writable: Bool, into storage: UnsafeMutableBufferPointer<iovec>,
                           skip: UInt64 = 0, length: UInt64 = .max) -> Int {
        let part = writable ? writableRange : readableRange
        precondition(storage.count >= part.count, "fillIovecs: storage smaller than the chain")
        return fill(storage, from: part, skip: skip, length: length)
    }

    func iovecs(_ part: Range<Int>, limit: UInt32 = .max) -> [iovec] {
        [iovec](unsafeUninitializedCapacity: Swift.max(part.count, 1)) { storage, n in
            n = fill(storage, from: part, skip: 0, length: UInt64(limit))
        }
    }

    /// Writes the iovecs for bytes [skip, skip + length) of the buffers at positions
    /// `part` into `storage` (room for one per buffer); returns how many. Zero-length
    /// pieces are left out.
    @inlinable @inline(__always)
    func fill(_ storage: UnsafeMutableBufferPointer<iovec>, from part: Range<Int>,
              skip: UInt64, length: UInt64) -> Int {
        var toSkip = skip
        var remaining = length
        var n = 0
        for i in part where remaining > 0 {
            let b = buffers[i]
            var len = UInt64(b.length)
            if toSkip >= len { toSkip -= len; continue }
            len -= toSkip
            let take = Swift.min(len, remaining)
            if take > 0 {
                storage.initializeElement(at: n, to: iovec(iov_base: b.host + Int(toSkip), iov_len: Int(take)))
                n += 1
            }
            toSkip = 0
            remaining -= take
        }
        return n
    }
}

/// Copies across a chain's buffers, for headers and status bytes that a driver may
/// split over several descriptors (2.7.4.1: no assumptions about framing).
extension DescriptorChain {
    /// Copies up to `destination.count` readable bytes starting `offset` bytes into the
    /// readable part. Returns the number copied (less if the readable part is shorter).
    public func copyFromReadable(offset: Int = 0, into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = destination.baseAddress else { return 0 }
        return copy(readableRange, offset: offset, count: destination.count) { host, done, n in
            (base + done).copyMemory(from: host, byteCount: n)
        }
    }

    /// Copies up to `destination.count` bytes of the writable part starting `offset`
    /// bytes in (e.g. data a device placed there itself). Returns the number copied.
    public func copyFromWritable(offset: Int = 0, into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = destination.baseAddress else { return 0 }
        return copy(writableRange, offset: offset, count: destination.count) { host, done, n in
            (base + done).copyMemory(from: host, byteCount: n)
        }
    }

    /// Reads `count` readable bytes at `offset`, or nil if the readable part is too short.
    public func readableBytes(offset: Int = 0, count: Int) -> [UInt8]? {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let copied = bytes.withUnsafeMutableBytes { copyFromReadable(offset: offset, into: $0) }
        return copied == count ? bytes : nil
    }

    /// Copies `source` into the writable part starting `offset` bytes in. Returns the
    /// number copied (less if the writable part is shorter).
    @inlinable @inline(__always)
    public func copyToWritable(offset: Int = 0, from source: UnsafeRawBufferPointer) -> Int {
        guard let base = source.baseAddress else { return 0 }
        return copy(writableRange, offset: offset, count: source.count) { host, done, n in
            host.copyMemory(from: base + done, byteCount: n)
        }
    }

    public func copyToWritable(offset: Int = 0, bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { copyToWritable(offset: offset, from: $0) }
    }

    /// Walks `count` bytes of `buffers` from `offset`, calling `move(host, done, n)`.
    @inlinable
    func copy(_ part: Range<Int>, offset: Int, count: Int,
                      _ move: (UnsafeMutableRawPointer, Int, Int) -> Void) -> Int {
        guard offset >= 0, count > 0 else { return 0 }
        var skip = offset
        var done = 0
        for i in part where done < count {
            let b = buffers[i]
            let length = Int(b.length)
            if skip >= length { skip -= length; continue }
            let n = Swift.min(length - skip, count - done)
            move(b.host + skip, done, n)
            done += n
            skip = 0
        }
        return done
    }
}
