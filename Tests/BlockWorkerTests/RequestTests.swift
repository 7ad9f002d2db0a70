import Glibc
import Testing
import VirtioCore
@testable import BlockWorker

/// Each request type and status code through real DriverQueue chains.
@Suite struct RequestTests {
    @Test func readReturnsImageData() throws {
        var h = try Harness()
        let r = try h.request(type: 0, sector: 2, dataLength: 1024, dataWritable: true)
        #expect(r.status == 0)
        #expect(r.usedLength == 1025)
        #expect(try h.memory.read(at: r.data, count: 1024) == pattern(sector: 2, count: 1024))
        #expect(h.counters[BlockCounter.bytesRead] == 1024)
    }

    @Test func writeReachesImage() throws {
        var h = try Harness()
        let r = try h.request(type: 1, sector: 5, dataLength: 512, dataWritable: false, fill: 0xab)
        #expect(r.status == 0)
        #expect(r.usedLength == 1)
        #expect(h.image.read(offset: 5 * 512, count: 512) == [UInt8](repeating: 0xab, count: 512))
        #expect(h.image.read(offset: 6 * 512, count: 512) == pattern(sector: 6, count: 512))
    }

    @Test func dataSplitAcrossDescriptorsAndHeaderSharingADescriptor() throws {
        var h = try Harness()
        // Header and first data bytes in one readable descriptor, the rest in two more.
        let block = try h.buffer(16 + 100, fill: 0x11)
        var header = [UInt8](repeating: 0, count: 16); header[0] = 1; header[8] = 3
        try h.memory.write(header, at: block)
        let more = try h.buffer(312, fill: 0x22)
        let last = try h.buffer(100, fill: 0x33)
        let s = try h.statusByte()
        let used = try h.run([DriverBuffer(block, length: 116), DriverBuffer(more, length: 312),
                              DriverBuffer(last, length: 100), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == 0)
        #expect(used?.length == 1)
        let want = [UInt8](repeating: 0x11, count: 100) + [UInt8](repeating: 0x22, count: 312) + [UInt8](repeating: 0x33, count: 100)
        #expect(h.image.read(offset: 3 * 512, count: 512) == want)
    }

    @Test func flush() throws {
        var h = try Harness()
        let r = try h.request(type: 4, sector: 0, dataLength: 0, dataWritable: false)
        #expect(r.status == 0)
        #expect(r.usedLength == 1)
        #expect(h.counters[BlockCounter.requestsFlush] == 1)
    }

    @Test(arguments: [("volt-test-serial", 16), ("exactly-twenty-chars", 20), ("", 0)])
    func getID(serial: String, length: Int) throws {
        var h = try Harness(serial: serial)
        let r = try h.request(type: 8, sector: 0, dataLength: 20, dataWritable: true, fill: 0xee)
        #expect(r.status == 0)
        #expect(r.usedLength == 21)
        let id = try h.memory.read(at: r.data, count: 20)
        #expect(Array(id.prefix(length)) == Array(serial.utf8))
        // NUL-padded; no terminator when exactly 20 bytes.
        #expect(id.dropFirst(length).allSatisfy { $0 == 0 })
    }

    @Test func defaultSerialComesFromTheImage() throws {
        let image = TempImage(sectors: 8)
        let disk = try DiskImage(path: image.path, imageFD: nil, readOnly: false, direct: false)
        var st = stat()
        stat(image.path, &st)
        #expect(disk.derivedSerial == DiskImage.serial(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
        #expect(disk.derivedSerial.utf8.count <= 20)
        #expect(disk.derivedSerial.hasPrefix("volt"))
    }

    @Test func discardPunchesAndReadsZero() throws {
        var h = try Harness()
        let seg = try h.segments([(sector: 8, sectors: 16, flags: 0), (sector: 40, sectors: 8, flags: 0)])
        let hd = try h.header(type: 11, sector: 0)
        let s = try h.statusByte()
        let used = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 32), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == 0)
        #expect(used?.length == 1)
        // Punching is allowed to be a no-op (the spec says MAY), but on ext4 it zeroes.
        let zeroed = h.image.read(offset: 8 * 512, count: 16 * 512).allSatisfy { $0 == 0 }
        #expect(zeroed)
        #expect(h.image.read(offset: 7 * 512, count: 512) == pattern(sector: 7, count: 512))
        #expect(h.image.read(offset: 24 * 512, count: 512) == pattern(sector: 24, count: 512))
    }

    @Test(arguments: [UInt32(0), BlockLayout.unmapFlag])
    func writeZeroes(flags: UInt32) throws {
        var h = try Harness()
        let seg = try h.segments([(sector: 3, sectors: 5, flags: flags)])
        let hd = try h.header(type: 13, sector: 0)
        let s = try h.statusByte()
        _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 16), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == 0)
        #expect(h.image.read(offset: 3 * 512, count: 5 * 512).allSatisfy { $0 == 0 })
        #expect(h.image.read(offset: 2 * 512, count: 512) == pattern(sector: 2, count: 512))
        #expect(h.image.read(offset: 8 * 512, count: 512) == pattern(sector: 8, count: 512))
        // The size never changes (KEEP_SIZE).
        var st = stat(); stat(h.image.path, &st)
        #expect(st.st_size == 64 * 512)
    }

    /// (type, segment flags, expected status)
    @Test(arguments: [
        (UInt32(11), BlockLayout.unmapFlag, UInt8(2)),   // discard with UNMAP: UNSUPP (5.2.6.2)
        (UInt32(11), UInt32(4), UInt8(2)),               // unknown flag: UNSUPP
        (UInt32(13), UInt32(2), UInt8(2)),               // unknown flag on write zeroes: UNSUPP
    ])
    func segmentFlags(type: UInt32, flags: UInt32, expected: UInt8) throws {
        var h = try Harness()
        let seg = try h.segments([(sector: 0, sectors: 1, flags: flags)])
        let hd = try h.header(type: type, sector: 0)
        let s = try h.statusByte()
        _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 16), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == expected)
        #expect(h.image.read(offset: 0, count: 512) == pattern(sector: 0, count: 512))
    }

    @Test func segmentOutOfRangeOrTooManyIsIOError() throws {
        var h = try Harness()
        for (list, count) in [([(sector: UInt64(60), sectors: UInt32(5), flags: UInt32(0))], 16),
                              ([(sector: UInt64.max, sectors: UInt32(1), flags: UInt32(0))], 16)] {
            let seg = try h.segments(list)
            let hd = try h.header(type: 11, sector: 0)
            let s = try h.statusByte()
            _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: UInt32(count)), DriverBuffer(s, length: 1, writable: true)])
            #expect(try h.status(at: s) == 1)
        }
        // 17 segments: more than max_discard_seg (16).
        let seg = try h.segments(Array(repeating: (sector: UInt64(0), sectors: UInt32(1), flags: UInt32(0)), count: 17))
        let hd = try h.header(type: 11, sector: 0)
        let s = try h.statusByte()
        _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 17 * 16), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == 1)
    }

    @Test func discardWithoutNegotiationIsUnsupported() throws {
        var h = try Harness(features: BlockFeature.flush)
        let seg = try h.segments([(sector: 0, sectors: 1, flags: 0)])
        let hd = try h.header(type: 11, sector: 0)
        let s = try h.statusByte()
        _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 16), DriverBuffer(s, length: 1, writable: true)])
        #expect(try h.status(at: s) == 2)
    }

    /// (type, sector, sectors) past the 64-sector disk: IOERR, len 1.
    @Test(arguments: [(UInt32(0), UInt64(64), 1), (UInt32(0), UInt64(63), 2), (UInt32(1), UInt64(64), 1),
                      (UInt32(0), UInt64.max, 1), (UInt32(1), UInt64.max >> 9, 1), (UInt32(0), UInt64(1) << 60, 1)])
    func outOfRange(type: UInt32, sector: UInt64, sectors: Int) throws {
        var h = try Harness()
        let r = try h.request(type: type, sector: sector, dataLength: sectors * 512, dataWritable: type == 0, fill: 0x5a)
        #expect(r.status == 1)
        #expect(r.usedLength == 1)
        #expect(h.image.read(offset: 63 * 512, count: 512) == pattern(sector: 63, count: 512))
    }

    @Test func lastSectorIsInRange() throws {
        var h = try Harness()
        let r = try h.request(type: 0, sector: 63, dataLength: 512, dataWritable: true)
        #expect(r.status == 0)
    }

    @Test(arguments: [UInt32(1), 11, 13])
    func readOnlyRefusesWrites(type: UInt32) throws {
        var h = try Harness(readOnly: true)
        let status: UInt8
        if type == 1 {
            status = try h.request(type: 1, sector: 0, dataLength: 512, dataWritable: false, fill: 0x77).status
        } else {
            let seg = try h.segments([(sector: 0, sectors: 1, flags: 0)])
            let hd = try h.header(type: type, sector: 0)
            let s = try h.statusByte()
            _ = try h.run([DriverBuffer(hd, length: 16), DriverBuffer(seg, length: 16), DriverBuffer(s, length: 1, writable: true)])
            status = try h.status(at: s)
        }
        #expect(status == 1)
        #expect(h.image.read(offset: 0, count: 512) == pattern(sector: 0, count: 512))
        // Reads still work.
        #expect(try h.request(type: 0, sector: 0, dataLength: 512, dataWritable: true).status == 0)
    }

    @Test(arguments: [UInt32(2), 3, 5, 7, 9, 10, 12, 14, 0xdead_beef])
    func unsupportedType(type: UInt32) throws {
        var h = try Harness()
        let r = try h.request(type: type, sector: 0, dataLength: 512, dataWritable: true)
        #expect(r.status == 2)
        #expect(r.usedLength == 1)
        #expect(h.counters[BlockCounter.requestsUnknown] == 1)
    }

    @Test func indirectChain() throws {
        var h = try Harness()
        let hd = try h.header(type: 0, sector: 1)
        let d1 = try h.buffer(256), d2 = try h.buffer(256)
        let s = try h.statusByte()
        let table = try h.buffer(64)
        try h.driver.addIndirectChain([DriverBuffer(hd, length: 16), DriverBuffer(d1, length: 256, writable: true),
                                       DriverBuffer(d2, length: 256, writable: true), DriverBuffer(s, length: 1, writable: true)],
                                      table: table)
        try h.driver.publish()
        h.handler.processBatch()
        let used = try h.driver.popUsed()
        #expect(used?.length == 513)
        #expect(try h.status(at: s) == 0)
        #expect(try h.memory.read(at: d1, count: 256) + h.memory.read(at: d2, count: 256) == pattern(sector: 1, count: 512))
    }
}
