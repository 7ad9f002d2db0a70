import IPC
import Testing
import TestFrontend
import VirtioCore

/// The test frontend against QEMU's vhost-user-blk export (libvhost-user): a back-end we
/// did not write, so passing here means the frontend speaks the real protocol.
@Suite(.timeLimit(.minutes(1)))
struct QemuStorageDaemonTests {
    typealias Block = BlockFeature

    @Test func handshakeNegotiatesWhatTheDaemonOffers() throws {
        guard let f = try BlockFixture.make() else { return }
        let fe = f.frontend
        #expect(fe.offeredFeatures & VirtioFeature.version1 != 0)
        #expect(fe.ackedFeatures & VirtioFeature.protocolFeatures != 0)
        #expect(fe.ackedFeatures & ~fe.offeredFeatures == 0)
        #expect(fe.ackedFeatures & VirtioFeature.eventIdx == 0, "eventIdx defaults to off")
        #expect(fe.hasProtocolFeature(.replyAck) && fe.hasProtocolFeature(.config))
        #expect(fe.protocolFeatures & ~fe.offeredProtocolFeatures == 0)
        #expect((fe.backendQueueCount ?? 1) >= 1)
        #expect(fe.hasProtocolFeature(.inflightShmfd) == (fe.inflight != nil))
    }

    @Test func configCapacityIsImageSizeInSectors() throws {
        guard let f = try BlockFixture.make() else { return }
        let config = try f.frontend.blockConfig()
        #expect(config.capacity == UInt64(BlockFixture.sectors))
        #expect(config.blockSize == 512)
        // A slice from the middle matches the same bytes read from 0.
        #expect(try f.frontend.config(offset: 20, size: 4) == Array(try f.frontend.config(size: 24)[20...]))
    }

    @Test(arguments: [1, 3])
    func readsAKnownSector(segments: Int) throws {
        guard let f = try BlockFixture.make() else { return }
        let result = try f.frontend.perform(.read(sector: 77, sectors: 2, segments: segments))
        #expect(result.status == .ok)
        #expect(result.data == BlockFixture.pattern(sector: 77) + BlockFixture.pattern(sector: 78))
        #expect(result.usedLength == 2 * 512 + 1)
    }

    @Test func writeThenReadBackAndOnTheHost() throws {
        guard let f = try BlockFixture.make() else { return }
        let bytes = (0..<1024).map { UInt8(truncatingIfNeeded: 0xa5 ^ $0) }
        #expect(try f.frontend.perform(.write(sector: 100, bytes)).status == .ok)
        #expect(try f.frontend.perform(.flush).status == .ok)
        #expect(try f.frontend.perform(.read(sector: 100, sectors: 2)).data == bytes)
        #expect(try f.imageSector(100) + f.imageSector(101) == bytes)
        #expect(try f.imageSector(99) == BlockFixture.pattern(sector: 99), "neighbours untouched")
        #expect(try f.imageSector(102) == BlockFixture.pattern(sector: 102))
    }

    @Test func flushIsOK() throws {
        guard let f = try BlockFixture.make() else { return }
        #expect(f.frontend.negotiatedFeatures & Block.flush != 0)
        let result = try f.frontend.perform(.flush)
        #expect(result.status == .ok)
        #expect(result.usedLength >= 1)
    }

    @Test func readBeyondCapacityIsIOError() throws {
        guard let f = try BlockFixture.make() else { return }
        #expect(try f.frontend.perform(.read(sector: UInt64(BlockFixture.sectors))).status == .ioError)
        #expect(try f.frontend.perform(.read(sector: UInt64(BlockFixture.sectors - 1), sectors: 2)).status == .ioError)
        // The session survives the error.
        #expect(try f.frontend.perform(.read(sector: 0)).data == BlockFixture.pattern(sector: 0))
    }

    @Test(arguments: [false, true])
    func manyRequestsInFlight(eventIdx: Bool) throws {
        guard let f = try BlockFixture.make(options: TestFrontendOptions(queueSize: 64, eventIdx: eventIdx)) else { return }
        let fe = f.frontend
        #expect(fe.eventIdx == (eventIdx && fe.offeredFeatures & VirtioFeature.eventIdx != 0))
        let sectors = (0..<20).map { 3 * $0 + 1 }
        var bySubmission: [UInt16: Int] = [:]
        for s in sectors { bySubmission[try fe.submit(.read(sector: UInt64(s))).head] = s }
        try fe.kick(queue: 0)
        var completions: [Completion] = []
        while completions.count < sectors.count {
            completions += try fe.waitForUsed(queue: 0, count: sectors.count - completions.count)
        }
        #expect(completions.count == sectors.count)
        for c in completions {
            let result = try fe.blockResult(of: c)
            #expect(result.status == .ok)
            #expect(result.data == BlockFixture.pattern(sector: bySubmission[c.head] ?? -1))
        }
        #expect(try fe.inFlight(queue: 0).isEmpty)
        // Second round reuses the freed descriptors and buffers.
        #expect(try fe.perform(.read(sector: 9)).data == BlockFixture.pattern(sector: 9))
        #expect(try fe.stop(queue: 0) == UInt16(sectors.count + 1))
    }

    @Test func indirectDescriptorsWhenOffered() throws {
        guard let f = try BlockFixture.make() else { return }
        let fe = f.frontend
        guard fe.offeredFeatures & VirtioFeature.indirectDescriptors != 0 else {
            print("⚠️  qemu-storage-daemon does not offer VIRTIO_RING_F_INDIRECT_DESC; indirect test not run")
            return
        }
        #expect(fe.indirectDescriptors)
        let bytes = (0..<512).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(try fe.perform(.write(sector: 5, bytes), indirect: true).status == .ok)
        let read = try fe.perform(.read(sector: 4, sectors: 3, segments: 5), indirect: true)
        #expect(read.status == .ok)
        #expect(read.data == BlockFixture.pattern(sector: 4) + bytes + BlockFixture.pattern(sector: 6))
    }

    @Test func writeZeroesAndGetID() throws {
        guard let f = try BlockFixture.make() else { return }
        let fe = f.frontend
        #expect(try fe.perform(.getID).status == .ok)
        guard fe.negotiatedFeatures & Block.writeZeroes != 0 else {
            print("⚠️  qemu-storage-daemon does not offer WRITE_ZEROES; that part not run")
            return
        }
        #expect(try fe.perform(.writeZeroes([.init(sector: 30, count: 2)])).status == .ok)
        #expect(try fe.perform(.read(sector: 30, sectors: 2)).data == [UInt8](repeating: 0, count: 1024))
        #expect(try fe.perform(.read(sector: 32)).data == BlockFixture.pattern(sector: 32))
    }
}

extension QemuStorageDaemonTests {
    /// The raw API builds the same chain by hand: what malformed-chain tests start from.
    @Test func handWrittenChainThroughTheRawAPI() throws {
        guard let f = try BlockFixture.make() else { return }
        let fe = f.frontend
        let header = try fe.allocate(16), data = try fe.allocate(512), status = try fe.allocate(1)
        try fe.write(VirtioBlockRequest.read(sector: 3).header, to: header)
        let slots = try fe.reserveDescriptors(queue: 0, count: 3)
        try fe.writeRawDescriptor(queue: 0, slot: slots[0], address: header.address, length: 16, flags: .next, next: slots[1])
        try fe.writeRawDescriptor(queue: 0, slot: slots[1], address: data.address, length: 512, flags: [.write, .next], next: slots[2])
        try fe.writeRawDescriptor(queue: 0, slot: slots[2], address: status.address, length: 1, flags: .write)
        let submission = try fe.offerRaw(queue: 0, head: slots[0], buffers: [header, data, status])
        try fe.kick(queue: 0)
        let completion = try fe.waitForCompletion(of: submission)
        #expect(completion.length == 513)
        #expect(try fe.read(status) == [0])
        #expect(try fe.read(data) == BlockFixture.pattern(sector: 3))
        fe.release(completion)
    }
}

extension QemuStorageDaemonTests {
    /// The benchmark driver's path: heads written once, offered as a batch (one publish),
    /// their used entries read as bare elements and re-offered; each head comes back once.
    @Test func rawHeadsOfferedAndReofferedInBatches() throws {
        guard let f = try BlockFixture.make() else { return }
        let fe = f.frontend
        var heads: [UInt16] = []
        var statuses: [GuestBuffer] = []
        var datas: [GuestBuffer] = []
        for sector in [5, 9] {
            let header = try fe.allocate(16), data = try fe.allocate(512), status = try fe.allocate(1)
            try fe.write(VirtioBlockRequest.read(sector: UInt64(sector)).header, to: header)
            let slots = try fe.reserveDescriptors(queue: 0, count: 3)
            try fe.writeRawDescriptor(queue: 0, slot: slots[0], address: header.address, length: 16, flags: .next, next: slots[1])
            try fe.writeRawDescriptor(queue: 0, slot: slots[1], address: data.address, length: 512, flags: [.write, .next], next: slots[2])
            try fe.writeRawDescriptor(queue: 0, slot: slots[2], address: status.address, length: 1, flags: .write)
            heads.append(slots[0]); statuses.append(status); datas.append(data)
        }
        for round in 0..<3 {
            try fe.offerRaw(queue: 0, heads: heads)
            #expect(try fe.inFlight(queue: 0).map(\.head) == heads.sorted())
            // The daemon is idle (it asked for kicks), so a kick is needed at least the first time.
            let kicked = try fe.kickIfNeeded(queue: 0)
            if round == 0 { #expect(kicked) }
            if !kicked { try fe.kick(queue: 0) }
            var used: [UsedElement] = []
            while used.count < 2 { try fe.waitForUsedRaw(queue: 0, into: &used) }
            #expect(Set(used.map(\.head)) == Set(heads))
            #expect(used.allSatisfy { $0.length == 513 })
            #expect(try fe.inFlight(queue: 0).isEmpty)
            #expect(try statuses.map { try fe.read($0) } == [[0], [0]])
            #expect(try fe.read(datas[1]) == BlockFixture.pattern(sector: 9))
        }
        // Nothing else is in flight: a wait times out rather than inventing an entry.
        var none: [UsedElement] = []
        #expect(throws: TestFrontendError.self) { try fe.waitForUsedRaw(queue: 0, into: &none, timeout: 0.05) }
        #expect(none.isEmpty)
    }
}
