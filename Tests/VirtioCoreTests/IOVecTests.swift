import Glibc
import Testing
import VirtioCore

@Suite struct IOVecTests {
    /// The chain and the map its buffers point into (a chain does not keep it alive).
    private func chain(_ buffers: [DriverBuffer]) throws -> (DescriptorChain, MemoryMap) {
        let memory = try makeMemory()
        var driver = try DriverQueue(memory: memory, size: 8, at: 0)
        var device = try driver.deviceQueue()
        try driver.addChain(buffers)
        try driver.publish()
        return (try #require(try device.popAvailable()), memory)
    }

    @Test func iovecsThroughAPipe() throws {
        let (c, memory) = try chain([
            DriverBuffer(0x10000, length: 3), DriverBuffer(0x10100, length: 2),
            DriverBuffer(0x20000, length: 4, writable: true), DriverBuffer(0x20100, length: 4, writable: true),
        ])
        try memory.write([1, 2, 3], at: 0x10000)
        try memory.write([4, 5], at: 0x10100)
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        // Readable buffers out of the guest ...
        let written = c.withIovecs(writable: false) { writev(fds[1], $0.baseAddress, Int32($0.count)) }
        #expect(written == 5)
        // ... and back into the writable ones, capped at 6 bytes.
        let vectors = c.writableIovecs(limit: 6)
        #expect(vectors.map(\.iov_len) == [4, 2])
        let read = withExtendedLifetime(memory) { vectors.withUnsafeBufferPointer { readv(fds[0], $0.baseAddress, Int32($0.count)) } }
        #expect(read == 5)
        #expect(try memory.read(at: 0x20000, count: 4) == [1, 2, 3, 4])
        #expect(try memory.read(at: 0x20100, count: 2) == [5, 0])
    }

    /// A window of the writable part (e.g. block data between header and status):
    /// skipped bytes and the cut at `length` can fall inside a buffer; empty pieces are left out.
    @Test func iovecWindowSkipsAndCuts() throws {
        let (c, _) = try chain([
            DriverBuffer(0x10000, length: 16),
            DriverBuffer(0x20000, length: 4, writable: true), DriverBuffer(0x20100, length: 0, writable: true),
            DriverBuffer(0x20200, length: 6, writable: true),
        ])
        let window = c.withIovecs(writable: true, skip: 2, length: 5) { v in
            v.map { ($0.iov_base! - c.withIovecs(writable: true) { $0[0].iov_base! }, $0.iov_len) }
        }
        #expect(window.map(\.1) == [2, 3])
        #expect(window[0].0 == 2)
        let header = c.withIovecs(writable: false, skip: 16, length: 100) { $0.count }
        #expect(header == 0)
    }

    @Test func copiesSpanDescriptors() throws {
        let (c, memory) = try chain([
            DriverBuffer(0x10000, length: 2), DriverBuffer(0x10100, length: 3),
            DriverBuffer(0x20000, length: 1, writable: true), DriverBuffer(0x20100, length: 2, writable: true),
        ])
        try memory.write([1, 2], at: 0x10000)
        try memory.write([3, 4, 5], at: 0x10100)
        #expect(c.readableBytes(count: 5) == [1, 2, 3, 4, 5])
        #expect(c.readableBytes(offset: 1, count: 3) == [2, 3, 4])
        #expect(c.readableBytes(offset: 1, count: 5) == nil)   // only 4 left
        #expect(c.copyToWritable(offset: 0, bytes: [9, 8, 7, 6]) == 3)
        #expect(try memory.read(at: 0x20000, count: 1) == [9])
        #expect(try memory.read(at: 0x20100, count: 2) == [8, 7])
        #expect(c.copyToWritable(offset: 2, bytes: [42]) == 1)
        #expect(try memory.read(at: 0x20101, count: 1) == [42])
        #expect(c.copyToWritable(offset: 3, bytes: [1]) == 0)
    }
}
