import CShim
import Glibc
import IPC
import Testing
import VirtioCore
@testable import BlockWorker
@testable import WorkerCore

/// The vhost-user device: config space, features, and queue threads started and
/// stopped the way BackendRequestHandler drives them.
@Suite struct DeviceTests {
    func makeDevice(sectors: Int = 64, readOnly: Bool = false, queues: Int = 1) throws -> (DeviceBackend, TempImage) {
        let image = TempImage(sectors: sectors)
        let disk = try DiskImage(path: image.path, imageFD: nil, readOnly: readOnly, direct: false)
        var o = BlockDeviceOptions()
        o.queueCount = queues
        return (try DeviceBackend(device: BlockDevice(disk: disk, options: o)), image)
    }

    func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, _: T.Type) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
    }

    @Test func featuresAndConfig() throws {
        let (d, _) = try makeDevice(queues: 4)
        let f = d.deviceFeatures
        for bit in [BlockFeature.version1, BlockFeature.sizeMax, BlockFeature.segMax, BlockFeature.blockSize,
                    BlockFeature.flush, BlockFeature.topology, BlockFeature.configWCE, BlockFeature.mq,
                    BlockFeature.discard, BlockFeature.writeZeroes, BlockFeature.indirectDesc, BlockFeature.eventIdx] {
            #expect(f & bit != 0)
        }
        #expect(f & BlockFeature.readOnly == 0)
        #expect(d.protocolFeatures == .protocolFeatures(.mq, .replyAck, .config, .inflightShmfd))
        let c = try d.config(offset: 0, size: 60)
        #expect(le(c, 0, UInt64.self) == 64)                  // capacity
        #expect(le(c, 12, UInt32.self) <= UInt32(d.maxQueueSize - 2))   // seg_max
        #expect(le(c, 12, UInt32.self) == 254)
        #expect(le(c, 20, UInt32.self) == 512)                 // blk_size
        #expect(c[32] == 1)                                    // writeback
        #expect(le(c, 34, UInt16.self) == 4)                   // num_queues
        #expect(le(c, 40, UInt32.self) == 16)                  // max_discard_seg
        #expect(c[56] == 1)                                    // write_zeroes_may_unmap
        // Sub-ranges, and bytes past the layout up to 256 read as zero.
        #expect(try d.config(offset: 34, size: 2) == [4, 0])
        #expect(try d.config(offset: 100, size: 156) == [UInt8](repeating: 0, count: 156))
        #expect(throws: (any Error).self) { try d.config(offset: 200, size: 57) }
    }

    @Test func readOnlyFeatures() throws {
        let (d, _) = try makeDevice(readOnly: true)
        #expect(d.deviceFeatures & BlockFeature.readOnly != 0)
        #expect(d.deviceFeatures & (BlockFeature.discard | BlockFeature.writeZeroes) == 0)
    }

    @Test func writebackToggleNeedsConfigWCE() throws {
        let (d, _) = try makeDevice()
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush)
        try d.setConfig(offset: 32, data: [0], liveMigration: false)
        #expect(try d.config(offset: 32, size: 1) == [1])      // ignored without CONFIG_WCE
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush | BlockFeature.configWCE)
        try d.setConfig(offset: 32, data: [0], liveMigration: false)
        #expect(try d.config(offset: 32, size: 1) == [0])
        #expect(d.block.state.writethrough)
        try d.setConfig(offset: 30, data: [9, 9, 1, 9], liveMigration: false)   // spans writeback
        #expect(try d.config(offset: 32, size: 1) == [1])
        #expect(try d.config(offset: 30, size: 2) == [0, 0])  // read-only bytes unchanged
        // Writes elsewhere are ignored, never fatal.
        try d.setConfig(offset: 0, data: [1, 2, 3, 4], liveMigration: false)
        #expect(try d.config(offset: 0, size: 1) == [64])
    }

    @Test func wceWithoutFlushStartsWritethrough() throws {
        let (d, _) = try makeDevice()
        try d.setFeatures(BlockFeature.version1 | BlockFeature.configWCE)
        #expect(try d.config(offset: 32, size: 1) == [0])
    }

    /// Guest memory shared like a front-end would, with a driver queue at guest 0.
    struct Frontend {
        let file: GuestMemoryFile
        let memory: MemoryMap
        var driver: DriverQueue
        let kick: CInt
        let call: CInt

        init(queueSize: UInt16 = 16) throws {
            file = try GuestMemoryFile(size: 1 << 20)
            memory = try MemoryMap(frontend: file, regions: [FrontendRegion(guestAddress: 0, size: 1 << 20, fileOffset: 0)])
            driver = try DriverQueue(memory: memory, size: queueSize, at: 0)
            kick = volt_eventfd(0, VOLT_EFD_CLOEXEC)
            call = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        }

        func regions() -> [IPC.MemoryRegionDescriptor] {
            [IPC.MemoryRegionDescriptor(region: MemoryRegion(guestAddress: 0, size: 1 << 20,
                                                             userAddress: file.userAddress(atOffset: 0), mmapOffset: 0),
                                        fd: OwnedFD(taking: dup(file.fd.rawValue)))]
        }

        func setup(base: UInt16 = 0) -> QueueSetup {
            QueueSetup(size: driver.size, descriptorTable: file.userAddress(atOffset: driver.descriptorTable.rawValue),
                       availableRing: file.userAddress(atOffset: driver.availableRing.rawValue),
                       usedRing: file.userAddress(atOffset: driver.usedRing.rawValue), nextAvailIndex: base)
        }

        /// Offers `n` FLUSH requests and kicks.
        mutating func flushes(_ n: Int, at base: UInt64) throws {
            for i in 0..<n {
                let hd = GuestAddress(base + UInt64(i) * 32)
                try memory.write([4] + [UInt8](repeating: 0, count: 15), at: hd)
                try driver.addChain([DriverBuffer(hd, length: 16), DriverBuffer(GuestAddress(base + UInt64(i) * 32 + 16), length: 1, writable: true)])
            }
            try driver.publish()
            EventFD.signal(kick)
        }

        /// Waits (bounded) for `n` used entries.
        mutating func waitUsed(_ n: Int) throws -> Int {
            var got = 0
            for _ in 0..<500 where got < n {
                while try driver.popUsed() != nil { got += 1 }
                if got < n { usleep(2_000) }
            }
            return got
        }
    }

    @Test func queueThreadServesKicksAndStopReturnsExactNextAvail() throws {
        let (d, _) = try makeDevice()
        var fe = try Frontend()
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush)
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup())
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.setQueueCall(0, fd: OwnedFD(taking: dup(fe.call)))
        try d.startQueue(0)
        #expect(d.isRunning(0))

        try fe.flushes(3, at: 0x10000)
        #expect(try fe.waitUsed(3) == 3)
        var counter: UInt64 = 0
        #expect(read(fe.call, &counter, 8) == 8)    // at least one interrupt

        // Disable keeps the position; buffers offered meanwhile are served on restart.
        try d.disableQueue(0)
        #expect(!d.isRunning(0))
        try fe.flushes(2, at: 0x11000)
        try d.startQueue(0)
        #expect(try fe.waitUsed(2) == 2)

        // Changing the call fd while running pauses and resumes the worker.
        try d.setQueueCall(0, fd: OwnedFD(taking: dup(fe.call)))
        #expect(d.isRunning(0))
        try fe.flushes(1, at: 0x12000)
        #expect(try fe.waitUsed(1) == 1)

        #expect(try d.stopQueue(0) == 6)
        #expect(!d.isRunning(0))
        #expect(d.countersNow()["requests_flush"] == 6)
    }

    @Test func restartFromVringBase() throws {
        let (d, _) = try makeDevice()
        var fe = try Frontend()
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush)
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup())
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.startQueue(0)
        try fe.flushes(2, at: 0x10000)
        #expect(try fe.waitUsed(2) == 2)
        let base = try d.stopQueue(0)
        #expect(base == 2)
        // Started again from the returned base (as after GET/SET_VRING_BASE).
        try d.configureQueue(0, fe.setup(base: base))
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.startQueue(0)
        try fe.flushes(1, at: 0x11000)
        #expect(try fe.waitUsed(1) == 1)
        #expect(try d.stopQueue(0) == 3)
    }

    /// Stopping mid-stream: the returned base equals exactly the chains completed, and
    /// a restart from it serves the rest, none twice, none lost.
    @Test(arguments: 0..<5)
    func stopMidStreamIsExact(round: Int) throws {
        let (d, _) = try makeDevice()
        var fe = try Frontend(queueSize: 64)
        try d.setFeatures(BlockFeature.version1 | BlockFeature.flush)
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup())
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.startQueue(0)
        for k in 0..<4 { try fe.flushes(10, at: 0x10000 + UInt64(k) * 0x1000) }
        usleep(UInt32(round * 300))
        let base = try d.stopQueue(0)
        var completed = 0
        while try fe.driver.popUsed() != nil { completed += 1 }
        #expect(Int(base) == completed)
        try d.configureQueue(0, fe.setup(base: base))
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.startQueue(0)
        #expect(try fe.waitUsed(40 - completed) == 40 - completed)
        #expect(try d.stopQueue(0) == 40)
        #expect(d.countersNow()["requests_flush"] == 40)
    }

    @Test func stopWithoutStartReturnsTheBase() throws {
        let (d, _) = try makeDevice()
        let fe = try Frontend()
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup(base: 7))
        #expect(try d.stopQueue(0) == 7)
    }

    @Test func ringOutsideMemoryMakesOnlyThatQueueUnusable() throws {
        let (d, _) = try makeDevice()
        let fe = try Frontend()
        try d.setMemoryTable(fe.regions())
        var bad = fe.setup(base: 5)
        bad.usedRing = 0x1234_0000
        try d.configureQueue(0, bad)
        try d.startQueue(0)
        #expect(!d.isRunning(0))
        #expect(try d.stopQueue(0) == 5)
    }

    @Test func newMemoryTableWhileRunning() throws {
        let (d, _) = try makeDevice()
        var fe = try Frontend()
        try d.setFeatures(BlockFeature.version1)
        try d.setMemoryTable(fe.regions())
        try d.configureQueue(0, fe.setup())
        try d.setQueueKick(0, fd: OwnedFD(taking: dup(fe.kick)))
        try d.startQueue(0)
        try fe.flushes(1, at: 0x10000)
        #expect(try fe.waitUsed(1) == 1)
        try d.setMemoryTable(fe.regions())
        #expect(d.isRunning(0))
        try fe.flushes(1, at: 0x11000)
        #expect(try fe.waitUsed(1) == 1)
        #expect(try d.stopQueue(0) == 2)
    }
}

extension DeviceBackend {
    /// The block device this back-end serves.
    var block: BlockDevice { device as! BlockDevice }
}
