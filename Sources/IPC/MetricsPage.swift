import CShim
import Glibc
import SystemPackage

/// Device counters shared between a worker and the VMM through one memfd page: the
/// worker names its counters once and bumps them with relaxed atomic adds on its data
/// path; the VMM reads them whenever it writes metrics, with no messages and no locks.
///
/// Layout (little-endian): magic "VMET" u32, version u32, count u32 (published last,
/// release), reserved u32, then `count` entries of 48 bytes: name (40 bytes, NUL-padded),
/// value u64.
public final class MetricsPage: @unchecked Sendable {
    public static let size = 4096
    static let magic: UInt32 = 0x5445_4d56   // "VMET"
    static let headerSize = 16, entrySize = 48, nameSize = 40
    public static let maxCounters = (size - headerSize) / entrySize

    public let fd: FileDescriptor
    private let base: UnsafeMutableRawPointer

    public struct Counter: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        public func add(_ n: UInt64 = 1) { volt_add_u64(pointer, n) }
        public var value: UInt64 { volt_load_u64(pointer) }

        /// Counters in private memory, for when no page could be had (they still count,
        /// nobody else sees them). Never freed: they live as long as the process.
        public static func detached(count: Int) -> [Counter] {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 8, alignment: 8)
            memory.initializeMemory(as: UInt64.self, repeating: 0, count: max(count, 1))
            return (0..<count).map { Counter(pointer: memory + $0 * 8) }
        }
    }

    public enum PageError: Error, CustomStringConvertible {
        case system(String, Errno)
        case tooManyCounters(Int)
        case notAMetricsPage
        public var description: String {
            switch self {
            case let .system(what, err): return "metrics page: \(what): \(err)"
            case let .tooManyCounters(n): return "metrics page: \(n) counters, at most \(MetricsPage.maxCounters)"
            case .notAMetricsPage: return "metrics page: the fd is not a metrics page (wrong size)"
            }
        }
    }

    /// A new page (the VMM creates one per worker and passes the fd).
    public static func create() throws(PageError) -> MetricsPage {
        let fd = volt_memfd_create("volt-metrics", VOLT_MFD_CLOEXEC)
        guard fd >= 0 else { throw .system("memfd_create", Errno(rawValue: -fd)) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let err = Errno(rawValue: errno)
            close(fd)
            throw .system("ftruncate", err)
        }
        return try MetricsPage(adopting: FileDescriptor(rawValue: fd))
    }

    /// Maps an existing page (the worker's `--metrics-fd`); the page owns the fd.
    public init(adopting fd: FileDescriptor) throws(PageError) {
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw .system("fstat", Errno(rawValue: errno)) }
        guard info.st_size == Self.size else { throw .notAMetricsPage }
        let p = mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        guard let p, p != MAP_FAILED else { throw .system("mmap", Errno(rawValue: errno)) }
        self.fd = fd
        base = p
    }

    deinit {
        munmap(base, Self.size)
        try? fd.close()
    }

    /// Worker side: names the counters (once) and returns them in the same order.
    public func register(_ names: [String]) throws(PageError) -> [Counter] {
        guard names.count <= Self.maxCounters else { throw .tooManyCounters(names.count) }
        base.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        base.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
        var counters: [Counter] = []
        for (i, name) in names.enumerated() {
            let entry = base + Self.headerSize + i * Self.entrySize
            let bytes = Array(name.utf8.prefix(Self.nameSize - 1))
            for j in 0..<Self.nameSize { entry.storeBytes(of: j < bytes.count ? bytes[j] : 0, toByteOffset: j, as: UInt8.self) }
            counters.append(Counter(pointer: entry + Self.nameSize))
        }
        volt_store_u32_release(base + 8, UInt32(names.count))
        return counters
    }

    /// VMM side: every counter the worker registered, by name. Values are whatever a
    /// worker (possibly hostile) wrote; names are cut at the first NUL and the count is
    /// bounded, so a bad page yields nonsense numbers, never a bad read.
    public func snapshot() -> [(name: String, value: UInt64)] {
        guard UInt32(littleEndian: base.load(as: UInt32.self)) == Self.magic else { return [] }
        let count = min(Int(volt_load_u32_acquire(base + 8)), Self.maxCounters)
        return (0..<count).map { i in
            let entry = base + Self.headerSize + i * Self.entrySize
            let raw = UnsafeRawBufferPointer(start: entry, count: Self.nameSize)
            let name = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            return (name, volt_load_u64(entry + Self.nameSize))
        }
    }
}
