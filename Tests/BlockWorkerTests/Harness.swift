import CShim
import Glibc
import IPC
import VirtioCore
@testable import BlockWorker
@testable import WorkerCore

/// A temporary raw image (removed on deinit).
final class TempImage {
    let path: String
    init(sectors: Int, fill: (Int) -> UInt8 = { UInt8(truncatingIfNeeded: $0 / 512 &* 7 &+ $0) }) {
        var template = Array("/tmp/volt-blk-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0)
        path = String(cString: template)
        let bytes = (0..<(sectors * 512)).map(fill)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
    func read(offset: Int, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return out
    }
    deinit { unlink(path) }
}

extension GuestAddress: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt64) { self.init(value) }
}

/// Guest memory (memfd, 1 MiB at guest address 0), a driver-side queue at 0, a disk
/// image, and the device-side QueueHandler under test. Data buffers live from 0x10000.
struct Harness {
    static let dataBase: UInt64 = 0x10000
    let file: GuestMemoryFile
    let memory: MemoryMap
    var driver: DriverQueue
    var handler: QueueUnderTest
    let image: TempImage
    let state: BlockState
    var counters: Counters { handler.counters }
    /// Bump allocator for data buffers.
    var next: UInt64 = Harness.dataBase

    init(sectors: Int = 64, queueSize: UInt16 = 16, readOnly: Bool = false, eventIdx: Bool = false, direct: Bool = false,
         features: UInt64 = BlockFeature.flush | BlockFeature.discard | BlockFeature.writeZeroes,
         serial: String = "volt-test-serial") throws {
        file = try GuestMemoryFile(size: 1 << 20)
        memory = try MemoryMap(frontend: file, regions: [FrontendRegion(guestAddress: 0, size: 1 << 20, fileOffset: 0)])
        driver = try DriverQueue(memory: memory, size: queueSize, at: 0)
        image = TempImage(sectors: sectors)
        let disk = try DiskImage(path: image.path, imageFD: nil, readOnly: readOnly, direct: direct)
        var options = BlockDeviceOptions()
        options.serial = serial
        let device = BlockDevice(disk: disk, options: options)
        state = device.state
        state.ackedFeatures = features | (eventIdx ? BlockFeature.eventIdx : 0) | BlockFeature.version1
        handler = QueueUnderTest(queue: try driver.deviceQueue(eventIdx: eventIdx), state: state)
    }

    /// Reserves `length` bytes of guest memory filled with `fill`.
    mutating func buffer(_ length: Int, fill: UInt8 = 0) throws -> GuestAddress {
        let a = GuestAddress(next)
        next += UInt64((length + 15) & ~15)
        try memory.write([UInt8](repeating: fill, count: length), at: a)
        return a
    }

    /// The 16-byte request header {type, reserved, sector}.
    mutating func header(type: UInt32, sector: UInt64) throws -> GuestAddress {
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: type.littleEndian) { for (i, b) in $0.enumerated() { bytes[i] = b } }
        withUnsafeBytes(of: sector.littleEndian) { for (i, b) in $0.enumerated() { bytes[8 + i] = b } }
        let a = try buffer(16)
        try memory.write(bytes, at: a)
        return a
    }

    /// Discard / write-zeroes segments.
    mutating func segments(_ list: [(sector: UInt64, sectors: UInt32, flags: UInt32)]) throws -> GuestAddress {
        var bytes: [UInt8] = []
        for s in list {
            withUnsafeBytes(of: s.sector.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: s.sectors.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: s.flags.littleEndian) { bytes += $0 }
        }
        let a = try buffer(bytes.count)
        try memory.write(bytes, at: a)
        return a
    }

    /// Status byte buffer, preset to 0xff so "not written" is visible.
    mutating func statusByte() throws -> GuestAddress { try buffer(1, fill: 0xff) }

    func status(at a: GuestAddress) throws -> UInt8 { try memory.read(at: a, count: 1)[0] }

    /// Offers one chain, publishes, runs one batch, and returns its used element.
    mutating func run(_ chain: [DriverBuffer]) throws -> (id: UInt32, length: UInt32)? {
        try driver.addChain(chain)
        try driver.publish()
        handler.processBatch()
        return try driver.popUsed()
    }

    /// Submits a standard 3-part request: header, data, status.
    struct Outcome { var status: UInt8; var usedLength: UInt32; var data: GuestAddress }

    mutating func request(type: UInt32, sector: UInt64, dataLength: Int, dataWritable: Bool,
                          fill: UInt8 = 0) throws -> Outcome {
        let h = try header(type: type, sector: sector)
        let d = try buffer(dataLength, fill: fill)
        let s = try statusByte()
        var chain = [DriverBuffer(h, length: 16)]
        if dataLength > 0 { chain.append(DriverBuffer(d, length: UInt32(dataLength), writable: dataWritable)) }
        chain.append(DriverBuffer(s, length: 1, writable: true))
        let used = try run(chain)
        return Outcome(status: try status(at: s), usedLength: used?.length ?? .max, data: d)
    }
}

/// The block data path on one ring, as a queue thread runs it: `BlockQueue` over a
/// started `Ring` and its counters.
struct QueueUnderTest {
    var block: BlockQueue
    var ring = Ring(index: 0)
    var counters = Counters(deviceCount: BlockCounter.allCases.count)

    init(queue: Virtqueue, state: BlockState) {
        block = BlockQueue(state: state)
        ring.queue = queue
        ring.enabled = true
    }

    @discardableResult
    mutating func processBatch() -> Int { block.processBatch(&ring, &counters) }
    mutating func drain() { block.drain(&ring, &counters) }
    var broken: (any Error)? { ring.broken }
    var queue: Virtqueue { ring.queue! }
    /// Where used-buffer notifications go (a duplicate of `fd` is kept).
    var callFD: CInt? {
        get { ring.callFD }
        set { ring.call = newValue.map { OwnedFD(taking: dup($0)) } }
    }
}

func pattern(sector: Int, count: Int) -> [UInt8] {
    (sector * 512..<(sector * 512 + count)).map { UInt8(truncatingIfNeeded: $0 / 512 &* 7 &+ $0) }
}
