import CShim
import Foundation
import Glibc
import IPC
import TestFrontend
import VirtioCore

/// One row of the block table.
struct BlockWorkload {
    let name: String
    let write: Bool
    let blockSize: Int
    let queueDepth: Int
    let sequential: Bool

    static let rows: [BlockWorkload] = [
        BlockWorkload(name: "4 KiB rand read QD1", write: false, blockSize: 4096, queueDepth: 1, sequential: false),
        BlockWorkload(name: "4 KiB rand write QD1", write: true, blockSize: 4096, queueDepth: 1, sequential: false),
        BlockWorkload(name: "4 KiB rand read QD32", write: false, blockSize: 4096, queueDepth: 32, sequential: false),
        BlockWorkload(name: "4 KiB rand write QD32", write: true, blockSize: 4096, queueDepth: 32, sequential: false),
        BlockWorkload(name: "1 MiB seq read QD1", write: false, blockSize: 1 << 20, queueDepth: 1, sequential: true),
        BlockWorkload(name: "1 MiB seq write QD1", write: true, blockSize: 1 << 20, queueDepth: 1, sequential: true),
    ]
}

/// Offsets of one stream: uniform random block-aligned, or sequential from `start` and
/// wrapping at the end of the image.
struct OffsetStream {
    var random: SplitMix
    let blocks: UInt64
    let blockSize: UInt64
    let sequential: Bool
    var index: UInt64

    init(_ w: BlockWorkload, imageSize: UInt64, seed: UInt64, start: UInt64 = 0) {
        random = SplitMix(state: seed)
        blockSize = UInt64(w.blockSize)
        blocks = max(1, imageSize / blockSize)
        sequential = w.sequential
        index = start % blocks
    }

    mutating func next() -> UInt64 {
        if sequential {
            defer { index = (index + 1) % blocks }
            return index * blockSize
        }
        return (random.next() % blocks) * blockSize
    }
}

protocol BlockBackend: AnyObject {
    var label: String { get }
    func run(_ w: BlockWorkload, seconds: Double, seed: UInt64) throws -> Measurement
}

/// A vhost-user-blk back-end (volt-blk-worker or qemu-storage-daemon) driven by the test
/// frontend as a guest driver would: `queueDepth` chains (header, data, status) written
/// once into reserved descriptor slots with page-aligned data buffers, then re-offered
/// as each completes (only the 16-byte header changes). One kick per batch of re-offers;
/// completions wait on the call eventfd (no EVENT_IDX, the same for both back-ends).
final class VirtioBlockBackend: BlockBackend {
    let label: String
    let frontend: VhostUserTestFrontend
    let imageSize: UInt64
    /// Largest data segment the device accepts (size_max, when advertised).
    let sizeMax: Int
    /// Data segment size used for every backend, set by the caller (the smallest size_max).
    var segment: Int
    private var slots: [UInt16] = []
    static let reservedSlots = 192

    init(label: String, frontend: VhostUserTestFrontend) throws {
        self.label = label
        self.frontend = frontend
        try frontend.start()
        let config = try frontend.blockConfig()
        imageSize = config.capacity * 512
        let f = frontend.negotiatedFeatures
        if f & BlockFeature.sizeMax != 0, let m = config.sizeMax, m > 0 { sizeMax = Int(m) } else { sizeMax = 1 << 20 }
        segment = sizeMax
    }

    /// Reads `length` bytes at `offset` through the device (the plain submit path).
    func read(offset: UInt64, length: Int) throws -> [UInt8] {
        let r = try frontend.perform(.read(sector: offset / 512, sectors: length / 512), timeout: 10)
        guard r.status == .ok else { throw BenchError("\(label): read at \(offset) failed: \(r.status)") }
        return r.data
    }

    private func reserve() throws {
        if slots.isEmpty { slots = try frontend.reserveDescriptors(queue: 0, count: Self.reservedSlots) }
    }

    func run(_ w: BlockWorkload, seconds: Double, seed: UInt64) throws -> Measurement {
        try reserve()
        let qd = w.queueDepth
        let segments = (w.blockSize + segment - 1) / segment
        let perRequest = segments + 2
        guard qd * perRequest <= slots.count else {
            throw BenchError("\(w.name): \(qd) × \(perRequest) descriptors exceed the \(slots.count) reserved")
        }
        let memory = frontend.memory
        var allocated: [GuestBuffer] = []
        defer { for b in allocated { frontend.release(b) } }
        func allocate(_ n: Int) throws -> GuestBuffer {
            let b = try frontend.allocate(UInt32(n))
            allocated.append(b)
            return b
        }
        var headers: [UnsafeMutableRawPointer] = []
        var statuses: [UnsafeMutableRawPointer] = []
        var heads: [UInt16] = []
        var requestOfHead = [Int](repeating: -1, count: Int(frontend.options.queueSize))
        for r in 0..<qd {
            let header = try allocate(16)
            let status = try allocate(1)
            let raw = try allocate(w.blockSize + 4096)
            let data = GuestAddress((raw.address.rawValue + 4095) & ~4095)
            let mine = Array(slots[(r * perRequest)..<((r + 1) * perRequest)])
            try frontend.writeRawDescriptor(queue: 0, slot: mine[0], address: header.address, length: 16, flags: .next, next: mine[1])
            for s in 0..<segments {
                let length = min(segment, w.blockSize - s * segment)
                var flags: DescriptorFlags = .next
                if !w.write { flags.insert(.write) }
                try frontend.writeRawDescriptor(queue: 0, slot: mine[1 + s], address: GuestAddress(data.rawValue + UInt64(s * segment)),
                                                length: UInt32(length), flags: flags, next: mine[2 + s])
            }
            try frontend.writeRawDescriptor(queue: 0, slot: mine[perRequest - 1], address: status.address, length: 1, flags: .write)
            let dataBytes = try memory.buffer(at: data, length: UInt64(w.blockSize))
            if w.write {
                var fill = SplitMix(state: seed &+ UInt64(r))
                let words = dataBytes.bindMemory(to: UInt64.self)
                for i in words.indices { words[i] = fill.next() }
            }
            let h = try memory.buffer(at: header.address, length: 16).baseAddress!
            h.storeBytes(of: UInt32(w.write ? 1 : 0).littleEndian, toByteOffset: 0, as: UInt32.self)
            h.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
            headers.append(h)
            statuses.append(try memory.buffer(at: status.address, length: 1).baseAddress!)
            heads.append(mine[0])
            requestOfHead[Int(mine[0])] = r
        }

        var offsets = OffsetStream(w, imageSize: imageSize, seed: seed)
        var started = [UInt64](repeating: 0, count: qd)
        var m = Measurement()
        m.latencies.reserveCapacity(Int(seconds * 200_000))
        // Requests are re-issued as a driver does: header and status rewritten, heads
        // offered as one batch (one avail.idx publish), one kick per batch.
        var reissue: [UInt16] = []
        reissue.reserveCapacity(qd)
        var used: [UsedElement] = []
        used.reserveCapacity(qd)
        func prepare(_ r: Int) {
            headers[r].storeBytes(of: (offsets.next() / 512).littleEndian, toByteOffset: 8, as: UInt64.self)
            statuses[r].storeBytes(of: UInt8(0xff), as: UInt8.self)
            started[r] = now()
            reissue.append(heads[r])
        }
        let t0 = now()
        let deadline = t0 + UInt64(seconds * 1e9)
        for r in 0..<qd { prepare(r) }
        try frontend.offerRaw(queue: 0, heads: reissue)
        try frontend.kick(queue: 0)
        var inFlight = qd
        var last = t0
        while inFlight > 0 {
            used.removeAll(keepingCapacity: true)
            reissue.removeAll(keepingCapacity: true)
            try frontend.waitForUsedRaw(queue: 0, into: &used, timeout: 30)
            let t = now()
            last = t
            for c in used {
                let r = requestOfHead[Int(c.head)]
                guard r >= 0 else { throw BenchError("\(label): used head \(c.head) is not a request") }
                let status = statuses[r].load(as: UInt8.self)
                guard status == 0 else { throw BenchError("\(label): \(w.name) request failed with status \(status)") }
                m.latencies.append(t - started[r])
                m.operations += 1
                m.bytes += UInt64(w.blockSize)
                inFlight -= 1
                if t < deadline { prepare(r); inFlight += 1 }
            }
            if !reissue.isEmpty {
                try frontend.offerRaw(queue: 0, heads: reissue)
                try frontend.kick(queue: 0)
            }
        }
        m.nanoseconds = last - t0
        return m
    }
}

/// The host limit: preadv/pwritev from this process on the same image, same offsets,
/// with `queueDepth` threads each doing synchronous I/O (QD32 = 32 requests outstanding).
final class RawBlockBackend: BlockBackend {
    let label = "raw host"
    let fd: CInt
    let imageSize: UInt64

    init(path: String, direct: Bool) throws {
        let r = volt_open_image(path, O_RDWR, direct ? 1 : 0)
        guard r >= 0 else { throw BenchError("open \(path): errno \(-r)") }
        fd = r
        imageSize = UInt64(lseek(fd, 0, SEEK_END))
    }

    deinit { close(fd) }

    func run(_ w: BlockWorkload, seconds: Double, seed: UInt64) throws -> Measurement {
        let lock = NSLock()
        nonisolated(unsafe) var total = Measurement()
        nonisolated(unsafe) var failure: String?
        let fd = self.fd, size = imageSize
        let t0 = now()
        let deadline = t0 + UInt64(seconds * 1e9)
        runThreads(w.queueDepth, name: "raw") { i in
            var m = Measurement()
            m.latencies.reserveCapacity(Int(seconds * 200_000))
            var buffer: UnsafeMutableRawPointer?
            guard posix_memalign(&buffer, 4096, w.blockSize) == 0, let buffer else { return }
            defer { free(buffer) }
            var fill = SplitMix(state: seed &+ UInt64(i))
            let words = buffer.bindMemory(to: UInt64.self, capacity: w.blockSize / 8)
            for j in 0..<(w.blockSize / 8) { words[j] = fill.next() }
            // Thread 0 takes the backend's exact offset stream; the others their own seeds.
            var offsets = OffsetStream(w, imageSize: size, seed: i == 0 ? seed : seed &+ UInt64(i) &* 0x1000_0001)
            var last = t0
            while true {
                let start = now()
                if start >= deadline { break }
                let offset = offsets.next()
                var iov = iovec(iov_base: buffer, iov_len: w.blockSize)
                let n = w.write ? pwritev(fd, &iov, 1, off_t(offset)) : preadv(fd, &iov, 1, off_t(offset))
                guard n == w.blockSize else {
                    lock.withLock { failure = "\(w.name): \(w.write ? "pwritev" : "preadv") at \(offset) returned \(n), errno \(errno)" }
                    return
                }
                last = now()
                m.latencies.append(last - start)
                m.operations += 1
                m.bytes += UInt64(w.blockSize)
            }
            m.nanoseconds = last - t0
            lock.withLock { total.merge(m) }
        }
        if let failure { throw BenchError(failure) }
        return total
    }
}

/// `volt-bench blk`: one image, three back-ends (four with `--vs-worker`), one table.
struct BlockBench {
    var seconds: Double
    var sizeMiB: Int
    var imagePath: String?
    var direct: Bool
    var rowFilter: String?
    var rounds: Int
    /// `--vs-worker`: a second volt-blk-worker binary, run as the "base" backend.
    var baseWorker: String?

    func run() throws {
        let dir = executableDirectory()
        let workerPath = dir + "/volt-blk-worker"
        guard access(workerPath, X_OK) == 0 else {
            throw BenchError("\(workerPath) not found: build it first (swift build -c release)")
        }
        guard QemuStorageDaemon.executable != nil else {
            throw BenchError("qemu-storage-daemon is not on PATH (Debian: apt install qemu-system-common)")
        }
        let work = try makeWorkDirectory()

        // The image: ours (filled with pseudo-random data) or the caller's.
        let image: String
        if let imagePath {
            image = imagePath
        } else {
            image = "/var/tmp/volt-bench-\(getpid()).img"
            Cleanup.shared.add { unlink(image) }
            try fillImage(image, bytes: UInt64(sizeMiB) << 20)
        }
        let cacheState: String
        if direct {
            cacheState = "O_DIRECT for all \(baseWorker == nil ? "three" : "four") (page cache bypassed)"
        } else {
            try readWhole(image)   // warm: every block is in the page cache before any row
            cacheState = "warm (image read in full before the first row; \(imagePath == nil ? "written by volt-bench just before" : "caller's image"))"
        }

        // The vhost-user back-ends, all alive for the whole run.
        let options = TestFrontendOptions(memorySize: 64 << 20, queueSize: 256)
        func startWorker(_ path: String, name: String) throws -> VirtioBlockBackend {
            let socket = work + "/\(name).sock"
            let (exe, prefix) = workerCommand(path)
            let worker = try Child(exe, prefix + ["--socket-path", socket, "--path", image] + (direct ? ["--direct"] : []),
                                   log: work + "/\(name)-worker.log")
            Cleanup.shared.add { worker.stop() }
            try waitForSocket(socket, child: worker)
            return try VirtioBlockBackend(label: name + "-worker", frontend: VhostUserTestFrontend(socketPath: socket, options: options))
        }
        let volt = try startWorker(workerPath, name: "volt-blk")
        let base = try baseWorker.map { try startWorker($0, name: "base-blk") }
        let daemon = try QemuStorageDaemon(image: image, socketPath: work + "/qsd.sock", logPath: work + "/qsd.log", direct: direct)
        Cleanup.shared.add { daemon.stop() }
        let qsd = try VirtioBlockBackend(label: "qemu-storage-daemon", frontend: try daemon.frontend(options: options))
        let raw = try RawBlockBackend(path: image, direct: direct)
        let devices = [volt, qsd] + (base.map { [$0] } ?? [])
        // Same chains for every device: data split at the smallest size_max.
        let segment = min(devices.map(\.sizeMax).min()!, 1 << 20)
        for device in devices { device.segment = segment }

        // Sanity: the same bytes through every backend before measuring anything.
        var expected = [UInt8](repeating: 0, count: 8192)
        _ = expected.withUnsafeMutableBytes { pread(raw.fd, $0.baseAddress, 8192, 1 << 20) }
        for device in devices where try device.read(offset: 1 << 20, length: 8192) != expected {
            throw BenchError("\(device.label) returned different bytes than the image holds at 1 MiB")
        }

        let rows = BlockWorkload.rows.filter { rowFilter == nil || $0.name.localizedCaseInsensitiveContains(rowFilter!) }
        // Table order: volt, qsd, raw, then base (with --vs-worker).
        let backends: [BlockBackend] = [volt, qsd, raw] + (base.map { [$0] } ?? [])
        let short = ["volt", "qsd", "raw", "base"]
        var results: [[Measurement]] = []
        for (n, w) in rows.enumerated() {
            // Each cell runs in `rounds` slices, the backends taking turns (rotating who goes
            // first), so page-cache writeback and machine load drift hit all of them alike.
            var row = [Measurement](repeating: Measurement(), count: backends.count)
            fputs("  \(w.name):", stderr)
            for round in 0..<rounds {
                for k in 0..<backends.count {
                    let i = (k + round) % backends.count
                    let m = try backends[i].run(w, seconds: seconds / Double(rounds), seed: 0x5EED &+ UInt64(n * 100 + round))
                    row[i].append(m)
                }
            }
            fputs(zip(backends, row).map { " \($0.label) \(formatCount($1.opsPerSecond))" }.joined(separator: ",") + " IOPS\n", stderr)
            results.append(row)
        }

        print("volt-bench blk — \(machineSummary())")
        print("image: \(image), \(raw.imageSize >> 20) MiB; page cache: \(cacheState); \(format(seconds, 1)) s per cell in \(rounds) rounds, backends taking turns;"
              + " data segments of \(segment >> 10) KiB (\(base == nil ? "smaller size_max of the two" : "smallest size_max of the three") devices)")
        if let baseWorker { print("base = \(baseWorker), driven like volt (A/B); volt/base = IOPS ratio, no target") }
        print("raw host = preadv/pwritev from volt-bench, QD n = n threads each with one synchronous request outstanding")
        print("targets: volt/qsd ≥ 1.00, volt/raw ≥ 0.90 (IOPS ratios); ✗ marks a miss\n")
        var table = Table(header: ["row"] + short.prefix(backends.count).flatMap { b in
            ["\(b) IOPS", "\(b) MiB/s", "\(b) mean µs", "\(b) p99 µs"]
        } + ["volt/qsd", "volt/raw"] + (base == nil ? [] : ["volt/base"]))
        for (w, row) in zip(rows, results) {
            var cells = [w.name]
            for m in row {
                cells += [formatCount(m.opsPerSecond), format(m.mibPerSecond, 1), format(m.meanLatencyUs, 1), format(m.p99LatencyUs, 1)]
            }
            let vq = row[0].opsPerSecond / row[1].opsPerSecond
            let vr = row[0].opsPerSecond / row[2].opsPerSecond
            cells += [format(vq, 2) + (vq >= 1.0 ? " ✓" : " ✗"), format(vr, 2) + (vr >= 0.9 ? " ✓" : " ✗")]
            if base != nil { cells.append(format(row[0].opsPerSecond / row[3].opsPerSecond, 2)) }
            table.rows.append(cells)
        }
        print(table.render())
        fflush(stdout)
    }

    /// Creates `path` with `bytes` of pseudo-random data (every block allocated, no holes).
    private func fillImage(_ path: String, bytes: UInt64) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchError("create \(path): errno \(errno)") }
        defer { close(fd) }
        let chunk = 1 << 20
        var buffer = [UInt64](repeating: 0, count: chunk / 8)
        var fill = SplitMix(state: 42)
        var done: UInt64 = 0
        while done < bytes {
            for i in buffer.indices { buffer[i] = fill.next() }
            let n = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, chunk, off_t(done)) }
            guard n == chunk else { throw BenchError("write \(path): errno \(errno)") }
            done += UInt64(chunk)
        }
        guard fsync(fd) == 0 else { throw BenchError("fsync \(path): errno \(errno)") }
    }

    private func readWhole(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("open \(path): errno \(errno)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, 1 << 20) }) > 0 {}
    }
}
