import CShim
import Glibc
import Testing
import VirtioCore
@testable import BlockWorker

/// Image opening (--path / --image-fd / --readonly / --direct) and O_DIRECT I/O.
@Suite struct DiskTests {
    @Test func inheritedFd() throws {
        let image = TempImage(sectors: 16)
        let fd = open(image.path, O_RDWR)
        let disk = try DiskImage(path: nil, imageFD: fd, readOnly: false, direct: false)
        #expect(disk.capacity == 16)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func readOnlyFdNeedsReadonlyFlag() throws {
        let image = TempImage(sectors: 16)
        let fd = open(image.path, O_RDONLY)
        #expect(throws: DiskImage.OpenError.self) { try DiskImage(path: nil, imageFD: fd, readOnly: false, direct: false) }
        let fd2 = open(image.path, O_RDONLY)
        let disk = try DiskImage(path: nil, imageFD: fd2, readOnly: true, direct: false)
        #expect(disk.readOnly)
    }

    @Test func notADisk() {
        #expect(throws: DiskImage.OpenError.self) { try DiskImage(path: "/tmp", imageFD: nil, readOnly: true, direct: false) }
        #expect(throws: DiskImage.OpenError.self) { try DiskImage(path: "/nonexistent/x", imageFD: nil, readOnly: true, direct: false) }
    }

    @Test func directReadsAndWrites() throws {
        // Guest buffers here are 16-byte aligned: O_DIRECT goes through the bounce buffer.
        var h = try Harness(sectors: 64, direct: true)
        #expect(h.state.disk.direct)
        #expect(volt_is_direct(h.state.disk.fd) == 1)
        let r = try h.request(type: 0, sector: 8, dataLength: 4096, dataWritable: true)
        #expect(r.status == 0)
        #expect(try h.memory.read(at: r.data, count: 4096) == pattern(sector: 8, count: 4096))
        let w = try h.request(type: 1, sector: 16, dataLength: 4096, dataWritable: false, fill: 0xc3)
        #expect(w.status == 0)
        #expect(h.image.read(offset: 16 * 512, count: 4096) == [UInt8](repeating: 0xc3, count: 4096))
    }

    @Test func directWithPageAlignedBuffersAndUnalignedRange() throws {
        var h = try Harness(sectors: 64, direct: true)
        h.next = 0x20000   // page aligned: straight O_DIRECT into guest memory
        let r = try h.request(type: 0, sector: 8, dataLength: 8192, dataWritable: true)
        #expect(r.status == 0)
        #expect(try h.memory.read(at: r.data, count: 8192) == pattern(sector: 8, count: 8192))
        // One 512-byte sector at an odd offset: fine whatever the O_DIRECT alignment.
        let w = try h.request(type: 1, sector: 3, dataLength: 512, dataWritable: false, fill: 0x3c)
        #expect(w.status == 0)
        #expect(h.image.read(offset: 3 * 512, count: 512) == [UInt8](repeating: 0x3c, count: 512))
        let z = try h.request(type: 0, sector: 3, dataLength: 512, dataWritable: true)
        #expect(try h.memory.read(at: z.data, count: 512) == [UInt8](repeating: 0x3c, count: 512))
    }
}
