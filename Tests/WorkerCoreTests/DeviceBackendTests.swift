import Glibc
import IPC
import Testing
import TestFrontend
import VirtioCore
@testable import WorkerCore

/// The framework through the real vhost-user protocol (an in-process BackendRequestHandler
/// on a socketpair): rings spread over threads, exact stop and restart, memory-table
/// replacement under running queues, a handler that throws.
@Suite struct DeviceBackendTests {
    func session(_ device: StampDevice, queues: Int) throws -> (InProcessBackend, DeviceBackend) {
        let backend = try DeviceBackend(device: device)
        let server = try InProcessBackend(device: backend, options: TestFrontendOptions(queueCount: queues, queueSize: 64))
        try server.frontend.start()
        return (server, backend)
    }

    /// Submits `n` chains of one 8-byte writable buffer on `queue` and kicks.
    func offer(_ fe: VhostUserTestFrontend, queue: Int, _ n: Int) throws -> [Submission] {
        let s = try (0..<n).map { _ in try fe.submit(queue: queue, [.writable(8)]) }
        try fe.kick(queue: queue)
        return s
    }

    /// The stamps of completed chains, in completion order.
    func stamps(_ fe: VhostUserTestFrontend, queue: Int, count: Int) throws -> [(UInt32, UInt32)] {
        var out: [(UInt32, UInt32)] = []
        while out.count < count {
            for c in try fe.waitForUsed(queue: queue) {
                #expect(c.length == 8)
                let b = try fe.read(c.submission.buffers[0])
                out.append((b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) },
                            b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) }))
                fe.release(c)
            }
        }
        return out
    }

    @Test func queuesAreServedOnTheirThreads() throws {
        let device = StampDevice(queues: 3, layout: [[0, 2], [1]])
        let (server, backend) = try session(device, queues: 3)
        defer { server.close() }
        #expect(backend.threadCount == 2)
        for q in 0..<3 { _ = try offer(server.frontend, queue: q, 5) }
        for q in 0..<3 {
            let got = try stamps(server.frontend, queue: q, count: 5)
            #expect(got.map(\.0) == Array(repeating: UInt32(q), count: 5))
            #expect(got.map(\.1) == Array(0..<5), "queue \(q): each chain once, in order")
        }
        #expect(backend.countersNow()["stamps_written"] == 15)
        #expect(backend.countersNow()["kicks"].map { $0 >= 3 } == true)
        #expect(device.changes.sorted() == [0, 1, 2], "each start reached the device")
    }

    @Test func badThreadLayoutsAreRefused() {
        #expect(throws: WorkerError.self) { try DeviceBackend(device: StampDevice(queues: 2, layout: [[0]])) }
        #expect(throws: WorkerError.self) { try DeviceBackend(device: StampDevice(queues: 2, layout: [[0, 1], [1]])) }
        #expect(throws: WorkerError.self) { try DeviceBackend(device: StampDevice(queues: 1, layout: [[0, 3]])) }
    }

    /// GET_VRING_BASE on a running queue returns exactly what was consumed; a restart
    /// from it serves the rest, none twice, none lost.
    @Test(arguments: 0..<4)
    func stopIsExactAndRestartContinues(round: Int) throws {
        let device = StampDevice(queues: 1, budget: 2, delayMicroseconds: 200)
        let (server, _) = try session(device, queues: 1)
        defer { server.close() }
        let fe = server.frontend
        _ = try offer(fe, queue: 0, 40)
        usleep(UInt32(round * 1500))
        let base = try fe.stop(queue: 0)
        var used: [UsedElement] = []
        _ = try? fe.waitForUsedRaw(queue: 0, count: 0, into: &used, timeout: 0)
        let done = try fe.waitForUsed(queue: 0, count: 0, timeout: 0.2).count
        #expect(Int(base) == done, "round \(round): base \(base), \(done) completed")
        try fe.restart(queue: 0, base: base)
        try fe.kick(queue: 0)
        let rest = try stamps(fe, queue: 0, count: 40 - done)
        #expect(rest.map(\.1) == (UInt32(done)..<40).map { $0 }, "the rest, in order, once each")
        #expect(try fe.stop(queue: 0) == 40)
    }

    /// SET_MEM_TABLE while a queue is mid-stream (a handler turn serves 2 chains, 200 µs
    /// each): the ring moves to the new map at the same position.
    @Test func memoryTableReplacedWhileTheQueueRuns() throws {
        let device = StampDevice(queues: 2, budget: 2, delayMicroseconds: 200)
        let (server, backend) = try session(device, queues: 2)
        defer { server.close() }
        let fe = server.frontend
        _ = try offer(fe, queue: 0, 60)
        _ = try offer(fe, queue: 1, 60)
        for _ in 0..<10 {
            try fe.resendMemoryTable()
            usleep(500)
        }
        for q in 0..<2 {
            let got = try stamps(fe, queue: q, count: 60)
            #expect(got.map(\.1) == Array(0..<60), "queue \(q): every chain once, in order")
        }
        #expect(backend.countersNow()["errors_broken_ring"] == 0)
    }

    /// A throwing handler stops its thread's rings (err fd signalled), the other thread
    /// keeps serving, and a restarted ring is served again.
    @Test func aThrowingHandlerStopsOnlyItsRings() throws {
        let device = StampDevice(queues: 2)
        let (server, backend) = try session(device, queues: 2)
        defer { server.close() }
        let fe = server.frontend
        _ = try fe.submit(queue: 0, [.readable([StampDevice.poison]), .writable(8)])
        try fe.kick(queue: 0)
        for _ in 0..<200 where backend.countersNow()["errors_broken_ring"] != 1 { usleep(5_000) }
        #expect(backend.countersNow()["errors_broken_ring"] == 1)
        #expect(backend.countersNow()["poison_seen"] == 1)
        _ = try offer(fe, queue: 1, 3)
        #expect(try stamps(fe, queue: 1, count: 3).map(\.1) == [0, 1, 2], "queue 1 is still served")
        _ = try offer(fe, queue: 0, 1)
        #expect(throws: TestFrontendError.self) { try fe.waitForUsed(queue: 0, timeout: 0.3) }
        // Restarted past the poisoned chain (as a driver resetting the queue would).
        let base = try fe.stop(queue: 0)
        #expect(base == 1, "the poisoned chain was taken")
        try fe.restart(queue: 0, base: base)
        try fe.kick(queue: 0)
        #expect(try stamps(fe, queue: 0, count: 1).count == 1, "served again after the restart")
    }

    @Test func counterNamesAreSnakeCase() {
        #expect(snakeCase("requestsGetId") == "requests_get_id")
        #expect(StampCounter.names == ["stamps_written", "poison_seen"])
    }
}
