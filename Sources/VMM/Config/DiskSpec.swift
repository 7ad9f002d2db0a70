import IPC
/// `--disk path=IMG[,ro=on][,direct=on][,queues=N][,serial=S]`: a raw image served by
/// a volt-blk-worker process that volt-vmm spawns for it.
public struct DiskSpec: Equatable {
    public var path: String
    var readOnly = false
    var direct = false
    var queues = 1
    var serial: String?
    /// `--fault disk<i>:...` given for this disk: the worker's `--fault` values.
    var faults: [FaultSpec] = []

    static let keys: Set<String> = ["path", "ro", "direct", "queues", "serial"]

    init(path: String, readOnly: Bool = false, direct: Bool = false, queues: Int = 1, serial: String? = nil) {
        self.path = path
        self.readOnly = readOnly
        self.direct = direct
        self.queues = queues
        self.serial = serial
    }

    public init(parsing text: String) throws {
        let option = try KeyValueOption(flag: "--disk", text: text, allowedKeys: Self.keys)
        path = try option.required("path")
        readOnly = try option.bool("ro", default: false)
        direct = try option.bool("direct", default: false)
        queues = try option.int("queues", default: 1, range: 1...16)
        serial = option.string("serial")
        if let serial, serial.utf8.count > 20 {
            throw ConfigError.serialTooLong(serial)
        }
    }
}
