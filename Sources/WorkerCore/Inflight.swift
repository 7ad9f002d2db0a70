import CShim
import Glibc
import IPC
import SystemPackage

// vhost-user inflight I/O tracking for split rings (qemu docs/interop/vhost-user.rst,
// "Inflight I/O tracking"). The buffer is a memfd this worker creates at
// GET_INFLIGHT_FD; the front-end keeps it and hands it to the next worker with
// SET_INFLIGHT_FD after a crash, so that worker can resubmit what was taken from the
// available ring but never completed.

/// Byte layout of the buffer: one region per queue, each a 16-byte header
/// {le64 features, le16 version, le16 desc_num, le16 last_batch_head, le16 used_idx}
/// followed by desc_num 16-byte DescStateSplit {u8 inflight, u8 padding[5], le16 next,
/// le64 counter}. Regions are rounded up to 64 bytes (our choice; the front-end only
/// keeps the fd and the size we report).
public enum InflightLayout {
    public static let headerSize = 16
    public static let descriptorSize = 16
    public static let regionAlignment = 64
    public static let version: UInt16 = 1

    public static let featuresOffset = 0
    public static let versionOffset = 8
    public static let descNumOffset = 10
    public static let lastBatchHeadOffset = 12
    public static let usedIndexOffset = 14

    public static let inflightOffset = 0
    public static let nextOffset = 6
    public static let counterOffset = 8

    public static func regionSize(queueSize: UInt16) -> Int {
        let raw = headerSize + descriptorSize * Int(queueSize)
        return (raw + regionAlignment - 1) / regionAlignment * regionAlignment
    }

    public static func bufferSize(numQueues: UInt16, queueSize: UInt16) -> Int {
        Int(numQueues) * regionSize(queueSize: queueSize)
    }
}

public enum InflightError: Error, CustomStringConvertible {
    case memfd(Errno), truncate(Errno), map(Errno), stat(Errno)
    /// SET_INFLIGHT_FD described more bytes than the fd holds, or an unusable offset.
    case tooSmall(fileSize: Int64, needed: UInt64)
    case geometry(numQueues: UInt16, queueSize: UInt16, mmapSize: UInt64)

    public var description: String {
        switch self {
        case let .memfd(e): return "inflight buffer: memfd_create: \(e)"
        case let .truncate(e): return "inflight buffer: ftruncate: \(e)"
        case let .map(e): return "inflight buffer: mmap: \(e)"
        case let .stat(e): return "inflight buffer: fstat: \(e)"
        case let .tooSmall(size, needed): return "inflight buffer: the fd holds \(size) bytes, \(needed) described"
        case let .geometry(q, n, size):
            return "inflight buffer: \(q) queue(s) of \(n) need \(InflightLayout.bufferSize(numQueues: q, queueSize: n)) bytes, \(size) described"
        }
    }
}

/// A mapped inflight buffer. Queue handlers keep a reference, so the mapping outlives
/// every pointer into it.
public final class InflightBuffer: @unchecked Sendable {
    // @unchecked: each queue's region is written by that queue's thread only; the
    // header fields are set before any queue starts.
    public let fd: OwnedFD
    public let numQueues: UInt16
    public let queueSize: UInt16
    public let size: Int
    private let base: UnsafeMutableRawPointer
    private let mappedLength: Int

    /// A memfd big enough for the largest buffer this worker can be asked for, made at
    /// startup: GET_INFLIGHT_FD comes after the sandbox, which allows neither
    /// memfd_create nor ftruncate.
    public static func reserve(numQueues: UInt16, maxQueueSize: UInt16) throws(InflightError) -> OwnedFD {
        let raw = volt_memfd_create("volt-inflight", VOLT_MFD_CLOEXEC)
        guard raw >= 0 else { throw .memfd(Errno(rawValue: -raw)) }
        let fd = OwnedFD(taking: raw)
        let size = InflightLayout.bufferSize(numQueues: numQueues, queueSize: maxQueueSize)
        guard ftruncate(fd.rawValue, off_t(size)) == 0 else { throw .truncate(Errno(rawValue: errno)) }
        return fd
    }

    /// GET_INFLIGHT_FD: the reserved memfd, zeroed, each region stamped version 1 and
    /// desc_num. The geometry must fit the reservation.
    public static func create(in fd: OwnedFD, numQueues: UInt16, queueSize: UInt16) throws(InflightError) -> InflightBuffer {
        let size = InflightLayout.bufferSize(numQueues: numQueues, queueSize: queueSize)
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw .stat(Errno(rawValue: errno)) }
        guard Int64(size) <= Int64(st.st_size) else {
            throw .geometry(numQueues: numQueues, queueSize: queueSize, mmapSize: UInt64(max(st.st_size, 0)))
        }
        let buffer = try InflightBuffer(fd: fd, offset: 0, numQueues: numQueues, queueSize: queueSize, size: size)
        buffer.zero()
        for q in 0..<Int(numQueues) {
            let region = buffer.regionPointer(q)
            region.storeBytes(of: UInt64(0), toByteOffset: InflightLayout.featuresOffset, as: UInt64.self)
            region.storeBytes(of: queueSize.littleEndian, toByteOffset: InflightLayout.descNumOffset, as: UInt16.self)
            region.storeBytes(of: InflightLayout.version.littleEndian, toByteOffset: InflightLayout.versionOffset, as: UInt16.self)
        }
        return buffer
    }

    /// SET_INFLIGHT_FD: adopts a buffer a previous worker created.
    public static func adopt(_ description: InflightDescription, fd: OwnedFD) throws(InflightError) -> InflightBuffer {
        let needed = UInt64(InflightLayout.bufferSize(numQueues: description.numQueues, queueSize: description.queueSize))
        guard description.mmapSize >= needed else {
            throw .geometry(numQueues: description.numQueues, queueSize: description.queueSize, mmapSize: description.mmapSize)
        }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw .stat(Errno(rawValue: errno)) }
        let (end, overflow) = description.mmapOffset.addingReportingOverflow(description.mmapSize)
        guard !overflow, end <= UInt64(max(st.st_size, 0)) else {
            throw .tooSmall(fileSize: Int64(st.st_size), needed: end)
        }
        return try InflightBuffer(fd: fd, offset: description.mmapOffset, numQueues: description.numQueues,
                                  queueSize: description.queueSize, size: Int(description.mmapSize))
    }

    private init(fd: OwnedFD, offset: UInt64, numQueues: UInt16, queueSize: UInt16, size: Int) throws(InflightError) {
        // mmap wants a page-aligned offset: map from the page below.
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let delta = Int(offset % page)
        let length = size + delta
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, off_t(offset - UInt64(delta))),
              p != MAP_FAILED else { throw .map(Errno(rawValue: errno)) }
        self.fd = fd
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.size = size
        self.mappedLength = length
        self.base = p + delta
        _ = delta
    }

    deinit {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: base) & ~UInt(page - 1))!
        munmap(start, mappedLength)
    }

    /// A fresh buffer: the reserved memfd may hold a previous driver's state.
    fileprivate func zero() {
        memset(base, 0, size)
    }

    public var description: InflightDescription {
        InflightDescription(mmapSize: UInt64(size), mmapOffset: 0, numQueues: numQueues, queueSize: queueSize)
    }

    fileprivate func regionPointer(_ q: Int) -> UnsafeMutableRawPointer {
        base + q * InflightLayout.regionSize(queueSize: queueSize)
    }

    /// Queue `q`'s region for a ring of `ringSize` entries; nil if the buffer has no
    /// such queue or too few descriptor slots.
    public func queue(_ q: Int, ringSize: UInt16) -> InflightQueue? {
        guard q < Int(numQueues), ringSize <= queueSize else { return nil }
        return InflightQueue(buffer: self, region: regionPointer(q), ringSize: ringSize)
    }
}

/// One queue's inflight region, driven by that queue's thread. Steps follow the spec:
/// taking a head marks it (counter, inflight = 1); completing links it into the
/// last-batch list before used.idx is published, then clears it and records used_idx.
public struct InflightQueue {
    public let buffer: InflightBuffer
    private let region: UnsafeMutableRawPointer
    public let ringSize: UInt16
    /// Next fetch order number (the spec's "global counter").
    private var counter: UInt64 = 1

    fileprivate init(buffer: InflightBuffer, region: UnsafeMutableRawPointer, ringSize: UInt16) {
        self.buffer = buffer
        self.region = region
        self.ringSize = ringSize
    }

    private func descriptor(_ head: UInt16) -> UnsafeMutableRawPointer {
        region + InflightLayout.headerSize + Int(head) * InflightLayout.descriptorSize
    }

    public func isInflight(_ head: UInt16) -> Bool {
        descriptor(head).load(fromByteOffset: InflightLayout.inflightOffset, as: UInt8.self) != 0
    }

    public func counter(of head: UInt16) -> UInt64 {
        UInt64(littleEndian: descriptor(head).loadUnaligned(fromByteOffset: InflightLayout.counterOffset, as: UInt64.self))
    }

    public var lastBatchHead: UInt16 {
        get { UInt16(littleEndian: region.load(fromByteOffset: InflightLayout.lastBatchHeadOffset, as: UInt16.self)) }
        nonmutating set { region.storeBytes(of: newValue.littleEndian, toByteOffset: InflightLayout.lastBatchHeadOffset, as: UInt16.self) }
    }

    public var usedIndex: UInt16 {
        get { UInt16(littleEndian: region.load(fromByteOffset: InflightLayout.usedIndexOffset, as: UInt16.self)) }
        nonmutating set { region.storeBytes(of: newValue.littleEndian, toByteOffset: InflightLayout.usedIndexOffset, as: UInt16.self) }
    }

    /// A head taken from the available ring: counter, then inflight = 1.
    public mutating func markTaken(_ head: UInt16) {
        guard head < ringSize else { return }
        let d = descriptor(head)
        d.storeBytes(of: counter.littleEndian, toByteOffset: InflightLayout.counterOffset, as: UInt64.self)
        counter &+= 1
        volt_fence_release()
        d.storeBytes(of: UInt8(1), toByteOffset: InflightLayout.inflightOffset, as: UInt8.self)
    }

    /// Steps 2-3 of "supplying used buffers", per staged element, before used.idx moves.
    public func linkIntoBatch(_ head: UInt16) {
        guard head < ringSize else { return }
        descriptor(head).storeBytes(of: lastBatchHead.littleEndian, toByteOffset: InflightLayout.nextOffset, as: UInt16.self)
        lastBatchHead = head
    }

    /// After used.idx was published: inflight = 0 for the batch, then used_idx.
    public func completeBatch(_ heads: [UInt16], usedIndex published: UInt16) {
        volt_fence_release()
        for head in heads where head < ringSize {
            descriptor(head).storeBytes(of: UInt8(0), toByteOffset: InflightLayout.inflightOffset, as: UInt8.self)
        }
        volt_fence_release()
        usedIndex = published
    }

    /// "When reconnecting": if used_idx lags the ring's used.idx, the last batch was
    /// published but not cleared: clear it. Returns the heads still inflight in fetch
    /// order (counter), and continues the counter after the largest one.
    public mutating func recover(ringUsedIndex: UInt16) -> [UInt16] {
        let lag = ringUsedIndex &- usedIndex
        if lag != 0 {
            var head = lastBatchHead
            // A batch is at most the ring size; a longer lag means a corrupt region.
            for _ in 0..<min(Int(lag), Int(ringSize)) where head < ringSize {
                let d = descriptor(head)
                d.storeBytes(of: UInt8(0), toByteOffset: InflightLayout.inflightOffset, as: UInt8.self)
                head = UInt16(littleEndian: d.loadUnaligned(fromByteOffset: InflightLayout.nextOffset, as: UInt16.self))
            }
            volt_fence_release()
            usedIndex = ringUsedIndex
        }
        let pending = (0..<ringSize).filter { isInflight($0) }.sorted { counter(of: $0) < counter(of: $1) }
        counter = ((0..<ringSize).map { counter(of: $0) }.max() ?? 0) &+ 1
        return pending
    }
}
