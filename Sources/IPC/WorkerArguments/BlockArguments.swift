import IPC
import VirtioCore

/// volt-blk-worker's own options (the shared ones are `WorkerArguments`'), encoded
/// by volt-vmm and decoded by the worker. Parsed by hand: swift-argument-parser was measured for this (Swift 6.3.1, release, a trivial
/// program with 4 options): +3.7 MB binary, it links FoundationEssentials, RSS 12.5 vs
/// 7.0 MiB, and 11 ms vs 5 ms from exec to exit — per disk per VM.
public struct BlockArguments: DeviceArguments {
    public enum Image: Equatable, Sendable {
        /// A path the worker opens itself (standalone use).
        case path(String)
        /// An fd the caller opened (volt-vmm opens the image, the worker never sees the path).
        case fd(CInt)
    }

    public var image: Image?
    public var readOnly = false
    public var direct = false
    public var numQueues = 1
    public var queueSize = 1024
    public var serial: String?

    public init() {}

    public init(image: Image, readOnly: Bool = false, direct: Bool = false, numQueues: Int = 1, serial: String? = nil) {
        self.image = image; self.readOnly = readOnly; self.direct = direct; self.numQueues = numQueues; self.serial = serial
    }

    public static var faultDevice: FaultSpec.Device { .block }

    private var images = 0

    public mutating func parse(_ cursor: inout ArgumentCursor) throws(UsageError) -> Bool {
        switch cursor.name {
        case "--path", "--image", "--blk-file":
            let p = try cursor.value()
            guard !p.isEmpty else { throw UsageError("\(cursor.name) is empty", fix: "give the raw image's path") }
            image = .path(p); images += 1
        case "--image-fd": image = .fd(try cursor.fd()); images += 1
        case "--readonly", "--read-only": try cursor.flag(); readOnly = true
        case "--direct": try cursor.flag(); direct = true
        case "--num-queues": numQueues = try cursor.number(1...64)
        case "--queue-size": queueSize = try cursor.powerOfTwo(4...1024)
        case "--serial":
            let s = try cursor.value()
            guard s.utf8.count <= BlockLayout.idBytes, s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
                throw UsageError("--serial \(s)", fix: "use at most 20 printable ASCII characters")
            }
            serial = s
        default: return false
        }
        return true
    }

    public func validate() throws(UsageError) {
        guard images == 1 else {
            throw images == 0 ? UsageError("no disk image", fix: "pass --path IMG or --image-fd N")
                              : UsageError("more than one image given", fix: "give only one of --path/--image/--blk-file and --image-fd")
        }
    }

    public func encode() -> [String] {
        var out: [String] = []
        switch image {
        case let .path(p)?: out += ["--path", p]
        case let .fd(fd)?: out += ["--image-fd", "\(fd)"]
        case nil: break
        }
        if readOnly { out.append("--readonly") }
        if direct { out.append("--direct") }
        if numQueues != 1 { out += ["--num-queues", "\(numQueues)"] }
        if queueSize != 1024 { out += ["--queue-size", "\(queueSize)"] }
        if let serial { out += ["--serial", serial] }
        return out
    }

    public static func == (a: BlockArguments, b: BlockArguments) -> Bool {
        a.image == b.image && a.readOnly == b.readOnly && a.direct == b.direct && a.numQueues == b.numQueues
            && a.queueSize == b.queueSize && a.serial == b.serial
    }
}
