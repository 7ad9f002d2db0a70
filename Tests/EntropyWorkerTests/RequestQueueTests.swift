import Glibc
import IPC
import Testing
import TestFrontend
import VirtioCore
@testable import EntropyWorker
@testable import WorkerCore

/// The entropy device in-process, through the vhost-user protocol: what lands in the
/// guest's buffers, how long a request may be, what a chain without room gets, and
/// the zero fault.
@Suite struct RequestQueueTests {
    func session(_ arguments: EntropyArguments = EntropyArguments(), faults: [FaultSpec] = [],
                 queueSize: UInt16 = 64) throws -> (InProcessBackend, DeviceBackend) {
        let backend = try DeviceBackend(device: EntropyDevice(arguments: arguments, faults: faults))
        let server = try InProcessBackend(device: backend, options: TestFrontendOptions(memorySize: 16 << 20, queueSize: queueSize))
        try server.frontend.start()
        return (server, backend)
    }

    /// Submits one chain, waits, returns (used len, the writable bytes).
    func request(_ fe: VhostUserTestFrontend, _ chain: [BufferSpec]) throws -> (UInt32, [UInt8]) {
        let s = try fe.submit(queue: 0, chain)
        try fe.kick(queue: 0)
        let c = try fe.waitForCompletion(of: s)
        var bytes: [UInt8] = []
        for (b, w) in zip(s.buffers, s.writable) where w { bytes += try fe.read(b) }
        fe.release(c)
        return (c.length, bytes)
    }

    @Test func offersNoConfigAndOneQueue() throws {
        let (server, backend) = try session()
        defer { server.close() }
        #expect(backend.queueCount == 1)
        #expect(server.frontend.negotiatedFeatures & VirtioFeature.version1 != 0)
        #expect(!server.frontend.hasProtocolFeature(.config), "virtio-rng has no config space")
    }

    @Test func buffersAreFilledWithRandomBytes() throws {
        let (server, backend) = try session()
        defer { server.close() }
        let (n1, a) = try request(server.frontend, [.writable(4096)])
        let (n2, b) = try request(server.frontend, [.writable(4096)])
        #expect(n1 == 4096 && n2 == 4096)
        #expect(a != b, "two requests, two different fills")
        #expect(Set(a).count > 200, "4 KiB of random bytes take most of the 256 values")
        #expect(a.filter { $0 == 0 }.count < 64, "not a zero-filled buffer")
        let counts = backend.countersNow()
        #expect(counts["requests"] == 2 && counts["bytes"] == 8192)
    }

    @Test func aChainSpanningBuffersIsFilledAcrossThem() throws {
        let (server, _) = try session()
        defer { server.close() }
        // Readable parts are ignored; every writable byte is filled.
        let (n, bytes) = try request(server.frontend, [.readable([1, 2, 3]), .writable(100), .writable(7), .writable(900)])
        #expect(n == 1007 && bytes.count == 1007)
        #expect(bytes[100..<107].contains { $0 != 0 } || bytes[107...].contains { $0 != 0 })
        #expect(Set(bytes[107...]).count > 150)
    }

    @Test func aHugeRequestGetsAtMostTheCap() throws {
        let (server, _) = try session()
        defer { server.close() }
        let (n, bytes) = try request(server.frontend, [.writable(1 << 20)])
        #expect(n == EntropyQueueHandler.maxBytesPerRequest)
        #expect(bytes[Int(n)...].allSatisfy { $0 == 0 }, "nothing written past used.len")
    }

    @Test func aChainWithNoRoomComesBackEmpty() throws {
        let (server, backend) = try session()
        defer { server.close() }
        let (n, _) = try request(server.frontend, [.readable([9, 9, 9, 9])])
        #expect(n == 0)
        #expect(backend.countersNow()["errors_malformed_chain"] == 1)
        // Still serving.
        #expect(try request(server.frontend, [.writable(16)]).0 == 16)
    }

    @Test func zeroFaultFillsZeros() throws {
        let (server, backend) = try session(faults: [FaultSpec(kind: .zero(percent: 100))])
        defer { server.close() }
        let (n, bytes) = try request(server.frontend, [.writable(512)])
        #expect(n == 512 && bytes == [UInt8](repeating: 0, count: 512))
        #expect(backend.countersNow()["faults_injected"] == 1)
    }

    /// With a small bucket, more requests than it holds wait for refills (a timer wakes
    /// the queue: the driver sends no further kick) and are then served in full.
    @Test func rateLimitedRequestsWaitAndAreServedInFull() throws {
        let limit = EntropyArguments(bandwidth: TokenBucketSpec(size: 1024, refillMilliseconds: 20))
        let (server, backend) = try session(limit)
        defer { server.close() }
        let fe = server.frontend
        let subs = try (0..<6).map { _ in try fe.submit(queue: 0, [.writable(1024)]) }
        try fe.kick(queue: 0)
        let done = try fe.waitForUsed(queue: 0, count: 6, timeout: 5)
        #expect(done.count == 6 && done.allSatisfy { $0.length == 1024 })
        #expect(Set(done.map(\.head)) == Set(subs.map(\.head)))
        #expect(backend.countersNow()["rate_limited"].map { $0 >= 1 } == true)
    }
}

/// The limiter's decisions on a virtual clock.
struct RateLimiterTests {
    @Test func waitsForAWholeRequestThenGrantsIt() {
        var r = RateLimiter(bandwidth: TokenBucketSpec(size: 1000, refillMilliseconds: 100), ops: nil, now: 0)
        #expect(r.waitMilliseconds(forBytes: 800, now: 0) == 0)
        #expect(r.take(bytes: 800, now: 0) == 800)
        #expect(r.waitMilliseconds(forBytes: 800, now: 0) == 60, "600 tokens missing at 10 per ms")
        #expect(r.waitMilliseconds(forBytes: 5000, now: 0) == 80, "larger than the bucket: wait for a full one")
        #expect(r.take(bytes: 5000, now: 80_000_000) == 1000)
    }

    @Test func opsBucketCountsRequests() {
        var r = RateLimiter(bandwidth: nil, ops: TokenBucketSpec(size: 2, refillMilliseconds: 1000), now: 0)
        #expect(r.take(bytes: 10, now: 0) == 10)
        #expect(r.take(bytes: 10, now: 0) == 10)
        #expect(r.waitMilliseconds(forBytes: 10, now: 0) == 500)
        #expect(RateLimiter(bandwidth: nil, ops: nil).isUnlimited)
    }
}
