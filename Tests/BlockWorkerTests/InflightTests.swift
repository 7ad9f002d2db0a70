import CShim
import Glibc
import IPC
import Testing
import VirtioCore
@testable import BlockWorker
@testable import WorkerCore

/// vhost-user inflight tracking: a worker that dies leaves its inflight buffer with the
/// front-end; a new device handed the same memfd (SET_INFLIGHT_FD) resubmits exactly
/// the heads that were taken and never completed, in fetch order, and nothing else.
@Suite struct InflightTests {
    typealias Frontend = DeviceTests.Frontend

    let image = TempImage(sectors: 64, fill: { _ in 0 })

    func makeDevice() throws -> DeviceBackend {
        let disk = try DiskImage(path: image.path, imageFD: nil, readOnly: false, direct: false)
        return try DeviceBackend(device: BlockDevice(disk: disk, options: BlockDeviceOptions()))
    }

    /// Features, memory table, then the ring started from `base` (as the VMM does).
    func start(_ d: DeviceBackend, _ fe: Frontend, base: UInt16) throws {
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush)
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup(base: base))
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.setQueueCall(0, fd: OwnedFD(taking: dup(fe.call)))
        try d.startQueue(0)
    }

    /// Offers one 512-byte write of `byte` to `sector`; returns its head.
    @discardableResult
    func offerWrite(_ fe: inout Frontend, sector: UInt64, byte: UInt8, at base: UInt64) throws -> UInt16 {
        var header = [UInt8](repeating: 0, count: 16)
        header[0] = 1   // VIRTIO_BLK_T_OUT
        withUnsafeBytes(of: sector.littleEndian) { for (i, b) in $0.enumerated() { header[8 + i] = b } }
        try fe.memory.write(header, at: GuestAddress(base))
        try fe.memory.write([UInt8](repeating: byte, count: 512), at: GuestAddress(base + 0x100))
        try fe.memory.write([0xff], at: GuestAddress(base + 0x300))
        return try fe.driver.addChain([DriverBuffer(GuestAddress(base), length: 16),
                                       DriverBuffer(GuestAddress(base + 0x100), length: 512),
                                       DriverBuffer(GuestAddress(base + 0x300), length: 1, writable: true)])
    }

    /// Used ids in ring order, waiting (bounded) for `n`.
    func used(_ fe: inout Frontend, _ n: Int) throws -> [UInt32] {
        var ids: [UInt32] = []
        for _ in 0..<500 where ids.count < n {
            while let e = try fe.driver.popUsed() { ids.append(e.id) }
            if ids.count < n { usleep(2_000) }
        }
        return ids
    }

    /// A first worker: inflight buffer from GET_INFLIGHT_FD, three flushes served, then
    /// its queue paused (it "dies" before the next kick is served).
    func firstWorker(_ fe: inout Frontend) throws -> (DeviceBackend, InflightDescription, OwnedFD) {
        let a = try makeDevice()
        let (description, fd) = try a.getInflight(InflightDescription(numQueues: 1, queueSize: 256))
        #expect(description.mmapSize >= UInt64(InflightLayout.bufferSize(numQueues: 1, queueSize: 256)))
        try start(a, fe, base: 0)
        try fe.flushes(3, at: 0x10000)
        #expect(try used(&fe, 3).count == 3)
        try a.disableQueue(0)
        // Completed requests left nothing inflight, and used_idx follows used.idx.
        var q = try #require(a.inflight?.queue(0, ringSize: fe.driver.size))
        #expect(q.usedIndex == 3)
        #expect(q.recover(ringUsedIndex: 3).isEmpty)
        return (a, description, fd)
    }

    @Test func takenButNotCompletedHeadsAreResubmittedInFetchOrder() throws {
        var fe = try Frontend()
        let (a, description, fd) = try firstWorker(&fe)
        let heads = [try offerWrite(&fe, sector: 1, byte: 0x11, at: 0x20000),
                     try offerWrite(&fe, sector: 2, byte: 0x22, at: 0x21000),
                     try offerWrite(&fe, sector: 3, byte: 0x33, at: 0x22000),
                     try offerWrite(&fe, sector: 4, byte: 0x44, at: 0x23000)]
        try fe.driver.publish()
        // The dying worker took the first two (fetch order: second, then first, as a
        // multi-threaded back-end may) and never completed them.
        var ring = try fe.driver.deviceQueue()
        ring.nextAvail = 3
        ring.nextUsed = 3
        let first = try #require(try ring.popAvailable()).head
        let second = try #require(try ring.popAvailable()).head
        var tracking = try #require(a.inflight?.queue(0, ringSize: fe.driver.size))
        _ = tracking.recover(ringUsedIndex: 3)
        tracking.markTaken(second)
        tracking.markTaken(first)
        #expect([first, second] == Array(heads[0..<2]))

        // The replacement adopts the buffer; the VMM sends base = used.idx = 3.
        let b = try makeDevice()
        try b.setInflight(description, fd: fd.duplicate())
        try start(b, fe, base: 3)
        EventFD.signal(fe.kick)
        let ids = try used(&fe, 4)
        #expect(ids == [UInt32(second), UInt32(first), UInt32(heads[2]), UInt32(heads[3])], "resubmitted in counter order, then the rest")
        #expect(b.countersNow()["resubmitted"] == 2)
        #expect(b.countersNow()["requests_write"] == 4, "each write once")
        #expect(try b.stopQueue(0) == 7)
        for (i, byte) in [UInt8(0x11), 0x22, 0x33, 0x44].enumerated() {
            #expect(image.read(offset: (i + 1) * 512, count: 512) == [UInt8](repeating: byte, count: 512))
        }
        var after = try #require(b.inflight?.queue(0, ringSize: fe.driver.size))
        #expect(after.recover(ringUsedIndex: 7).isEmpty, "nothing left inflight")
    }

    @Test func publishedButNotClearedBatchIsNotResubmitted() throws {
        var fe = try Frontend()
        let (a, description, fd) = try firstWorker(&fe)
        for k in 0..<4 { try offerWrite(&fe, sector: UInt64(10 + k), byte: 0x50 + UInt8(k), at: 0x20000 + UInt64(k) * 0x1000) }
        try fe.driver.publish()
        // The dying worker took two, completed them (used entries + used.idx published,
        // batch list linked) but died before clearing their inflight flags.
        var ring = try fe.driver.deviceQueue()
        ring.nextAvail = 3
        ring.nextUsed = 3
        var tracking = try #require(a.inflight?.queue(0, ringSize: fe.driver.size))
        _ = tracking.recover(ringUsedIndex: 3)
        var done: [UInt16] = []
        for _ in 0..<2 {
            let chain = try #require(try ring.popAvailable())
            tracking.markTaken(chain.head)
            try ring.stageUsed(head: chain.head, length: 1)
            tracking.linkIntoBatch(chain.head)
            done.append(chain.head)
        }
        ring.publishUsed()
        #expect(done.allSatisfy { tracking.isInflight($0) })
        #expect(try used(&fe, 2).count == 2)

        // The VMM sends base = used.idx = 5; the new device clears the batch from the
        // list and serves only the two never taken.
        let b = try makeDevice()
        try b.setInflight(description, fd: fd.duplicate())
        try start(b, fe, base: 5)
        EventFD.signal(fe.kick)
        #expect(try used(&fe, 2).count == 2)
        #expect(b.countersNow()["resubmitted"] == 0)
        #expect(b.countersNow()["requests_write"] == 2)
        #expect(try b.stopQueue(0) == 7)
        #expect(done.allSatisfy { !tracking.isInflight($0) })
    }

    @Test func setInflightRejectsABufferTooSmall() throws {
        let d = try makeDevice()
        let (_, fd) = try d.getInflight(InflightDescription(numQueues: 1, queueSize: 16))
        #expect(throws: InflightError.self) {
            try d.setInflight(InflightDescription(mmapSize: 1 << 20, mmapOffset: 0, numQueues: 1, queueSize: 16), fd: fd)
        }
        #expect(throws: InflightError.self) {
            try d.setInflight(InflightDescription(mmapSize: 64, mmapOffset: 0, numQueues: 4, queueSize: 256), fd: fd)
        }
    }
}
