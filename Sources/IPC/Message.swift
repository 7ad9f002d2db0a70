import VirtioCore

// vhost-user message framing and per-request validation
// (docs/interop/vhost-user.rst, "Message Specification" and "Front-end message types").

/// Protocol-wide constants.
public enum VhostUser {
    /// Version carried in bits 0-1 of every header's flags.
    public static let version: UInt32 = 1
    /// VHOST_USER_F_PROTOCOL_FEATURES: bit 30 of the virtio feature word.
    public static let protocolFeaturesBit = VirtioFeature.protocolFeatures
    /// Largest payload we accept: far above the largest valid one (config: 12 + 256).
    public static let maxPayloadSize = 4096
    /// At most 8 fds travel with one message.
    public static let maxFds = 8
    /// SET_MEM_TABLE carries at most 8 regions (one fd each).
    public static let maxMemoryRegions = 8
    /// VHOST_USER_MAX_CONFIG_SIZE.
    public static let maxConfigSize = 256
}

/// Front-end message types (ids from the spec).
public enum Request: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFd = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case getConfig = 24
    case setConfig = 25
    case getInflightFd = 31
    case setInflightFd = 32
    case resetDevice = 34
    case getMaxMemSlots = 36

    /// The spec's name, for error messages.
    public var name: String {
        switch self {
        case .getFeatures: return "GET_FEATURES"
        case .setFeatures: return "SET_FEATURES"
        case .setOwner: return "SET_OWNER"
        case .resetOwner: return "RESET_OWNER"
        case .setMemTable: return "SET_MEM_TABLE"
        case .setLogBase: return "SET_LOG_BASE"
        case .setLogFd: return "SET_LOG_FD"
        case .setVringNum: return "SET_VRING_NUM"
        case .setVringAddr: return "SET_VRING_ADDR"
        case .setVringBase: return "SET_VRING_BASE"
        case .getVringBase: return "GET_VRING_BASE"
        case .setVringKick: return "SET_VRING_KICK"
        case .setVringCall: return "SET_VRING_CALL"
        case .setVringErr: return "SET_VRING_ERR"
        case .getProtocolFeatures: return "GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: return "SET_PROTOCOL_FEATURES"
        case .getQueueNum: return "GET_QUEUE_NUM"
        case .setVringEnable: return "SET_VRING_ENABLE"
        case .getConfig: return "GET_CONFIG"
        case .setConfig: return "SET_CONFIG"
        case .getInflightFd: return "GET_INFLIGHT_FD"
        case .setInflightFd: return "SET_INFLIGHT_FD"
        case .resetDevice: return "RESET_DEVICE"
        case .getMaxMemSlots: return "GET_MAX_MEM_SLOTS"
        }
    }

    /// Requests whose reply is defined by the spec (REPLY_ACK adds nothing to these).
    public var hasInherentReply: Bool {
        switch self {
        case .getFeatures, .getProtocolFeatures, .getVringBase, .getQueueNum, .getConfig,
             .getInflightFd, .getMaxMemSlots:
            return true
        default:
            return false
        }
    }
}

/// VHOST_USER_PROTOCOL_F_* bit numbers.
public enum ProtocolFeature: UInt64, Sendable, CaseIterable {
    case mq = 0
    case logShmfd = 1
    case rarp = 2
    case replyAck = 3
    case mtu = 4
    case backendReq = 5
    case crossEndian = 6
    case cryptoSession = 7
    case pagefault = 8
    case config = 9
    case backendSendFd = 10
    case hostNotifier = 11
    case inflightShmfd = 12
    case resetDevice = 13
    case inbandNotifications = 14
    case configureMemSlots = 15
    case status = 16
    case xenMmap = 17
    case sharedObject = 18
    case deviceState = 19

    public var mask: UInt64 { 1 << rawValue }
}

extension UInt64 {
    /// Builds a protocol feature mask: `.protocolFeatures(.mq, .replyAck)`.
    public static func protocolFeatures(_ features: ProtocolFeature...) -> UInt64 {
        features.reduce(0) { $0 | $1.mask }
    }
}

/// The 12-byte header: request u32, flags u32, size u32.
public struct MessageHeader: Equatable, Sendable {
    public static let size = 12
    public static let versionMask: UInt32 = 0x3
    public static let replyFlag: UInt32 = 1 << 2
    public static let needReplyFlag: UInt32 = 1 << 3
    static let definedFlags: UInt32 = versionMask | replyFlag | needReplyFlag

    public var request: UInt32
    public var flags: UInt32
    public var size: UInt32

    public init(request: UInt32, flags: UInt32, size: UInt32) {
        self.request = request; self.flags = flags; self.size = size
    }

    /// A front-end request header (version 1, optionally need_reply).
    public static func request(_ r: Request, size: Int, needReply: Bool = false) -> MessageHeader {
        MessageHeader(request: r.rawValue, flags: VhostUser.version | (needReply ? needReplyFlag : 0),
                      size: UInt32(truncatingIfNeeded: size))
    }

    /// A back-end reply header (version 1, reply flag).
    public static func reply(_ r: Request, size: Int) -> MessageHeader {
        MessageHeader(request: r.rawValue, flags: VhostUser.version | replyFlag, size: UInt32(truncatingIfNeeded: size))
    }

    public var version: UInt32 { flags & Self.versionMask }
    public var isReply: Bool { flags & Self.replyFlag != 0 }
    public var needsReply: Bool { flags & Self.needReplyFlag != 0 }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u32(request); w.u32(flags); w.u32(size)
        return w.bytes
    }

    public static func decode(from bytes: [UInt8]) throws(MessageFault) -> MessageHeader {
        try expectSize(bytes, size)
        var r = ByteReader(bytes)
        return MessageHeader(request: r.u32(), flags: r.u32(), size: r.u32())
    }
}

/// A fully decoded and validated front-end request. Workers never see this: the
/// `BackendRequestHandler` turns it into `VhostUserDevice` calls.
public enum FrontendMessage: Equatable, Sendable {
    case getFeatures
    case setFeatures(UInt64)
    case setOwner
    case resetOwner
    case setMemTable(MemoryTable)
    case setVringNum(VringState)
    case setVringAddr(VringAddress)
    case setVringBase(VringState)
    case getVringBase(VringState)
    case setVringKick(VringFdPayload)
    case setVringCall(VringFdPayload)
    case setVringErr(VringFdPayload)
    case getProtocolFeatures
    case setProtocolFeatures(UInt64)
    case getQueueNum
    case setVringEnable(VringState)
    case getConfig(DeviceConfig)
    case setConfig(DeviceConfig)
    case getInflightFd(InflightDescription)
    case setInflightFd(InflightDescription)
    case resetDevice
    case getMaxMemSlots

    /// Validates header, payload size, payload fields and fd count, all before any state
    /// is touched. Checks that depend on the device (queue count, sizes) and on protocol
    /// state belong to the handler.
    public static func decode(header: MessageHeader, payload: [UInt8], fdCount: Int,
                              maxRegions: Int = VhostUser.maxMemoryRegions) throws(VhostUserError) -> FrontendMessage {
        guard let request = Request(rawValue: header.request) else {
            throw .unsupportedRequest(header.request)
        }
        do {
            return try decode(request, header: header, payload: payload, fdCount: fdCount, maxRegions: maxRegions)
        } catch {
            throw .invalidMessage(request, error)
        }
    }

    private static func decode(_ request: Request, header: MessageHeader, payload: [UInt8], fdCount: Int,
                               maxRegions: Int) throws(MessageFault) -> FrontendMessage {
        if header.version != VhostUser.version { throw .badVersion(header.version) }
        if header.isReply { throw .replyFlagOnRequest }
        if header.flags & ~MessageHeader.definedFlags != 0 { throw .reservedFlags(header.flags) }
        if Int(header.size) != payload.count { throw .wrongSize(expected: Int(header.size), actual: payload.count) }

        func fds(_ n: Int) throws(MessageFault) {
            if fdCount != n { throw .wrongFdCount(expected: n, actual: fdCount) }
        }
        func empty() throws(MessageFault) { try expectSize(payload, 0); try fds(0) }

        switch request {
        case .getFeatures: try empty(); return .getFeatures
        case .setFeatures: try fds(0); return .setFeatures(try decodeU64(payload))
        case .setOwner: try empty(); return .setOwner
        case .resetOwner: try empty(); return .resetOwner
        case .setMemTable:
            let table = try MemoryTable.decode(from: payload, maxRegions: maxRegions)
            try table.validate(maxRegions: maxRegions)
            try fds(table.regions.count)
            return .setMemTable(table)
        case .setLogBase, .setLogFd:
            // We never offer LOG_SHMFD or VHOST_F_LOG_ALL, so a front-end may not send these.
            throw .loggingUnsupported
        case .setVringNum: try fds(0); return .setVringNum(try VringState.decode(from: payload))
        case .setVringAddr:
            try fds(0)
            let address = try VringAddress.decode(from: payload)
            try address.validate()
            return .setVringAddr(address)
        case .setVringBase: try fds(0); return .setVringBase(try VringState.decode(from: payload))
        case .getVringBase: try fds(0); return .getVringBase(try VringState.decode(from: payload))
        case .setVringKick, .setVringCall, .setVringErr:
            let p = try VringFdPayload.decode(from: payload)
            try fds(p.expectedFds)
            switch request {
            case .setVringKick: return .setVringKick(p)
            case .setVringCall: return .setVringCall(p)
            default: return .setVringErr(p)
            }
        case .getProtocolFeatures: try empty(); return .getProtocolFeatures
        case .setProtocolFeatures: try fds(0); return .setProtocolFeatures(try decodeU64(payload))
        case .getQueueNum: try empty(); return .getQueueNum
        case .setVringEnable:
            try fds(0)
            let state = try VringState.decode(from: payload)
            if state.num > 1 { throw .vringEnableValue(state.num) }
            return .setVringEnable(state)
        case .getConfig: try fds(0); return .getConfig(try DeviceConfig.decode(from: payload))
        case .setConfig: try fds(0); return .setConfig(try DeviceConfig.decode(from: payload))
        case .getInflightFd: try fds(0); return .getInflightFd(try InflightDescription.decode(from: payload))
        case .setInflightFd: try fds(1); return .setInflightFd(try InflightDescription.decode(from: payload))
        case .resetDevice: try empty(); return .resetDevice
        case .getMaxMemSlots: try empty(); return .getMaxMemSlots
        }
    }

    public var request: Request {
        switch self {
        case .getFeatures: return .getFeatures
        case .setFeatures: return .setFeatures
        case .setOwner: return .setOwner
        case .resetOwner: return .resetOwner
        case .setMemTable: return .setMemTable
        case .setVringNum: return .setVringNum
        case .setVringAddr: return .setVringAddr
        case .setVringBase: return .setVringBase
        case .getVringBase: return .getVringBase
        case .setVringKick: return .setVringKick
        case .setVringCall: return .setVringCall
        case .setVringErr: return .setVringErr
        case .getProtocolFeatures: return .getProtocolFeatures
        case .setProtocolFeatures: return .setProtocolFeatures
        case .getQueueNum: return .getQueueNum
        case .setVringEnable: return .setVringEnable
        case .getConfig: return .getConfig
        case .setConfig: return .setConfig
        case .getInflightFd: return .getInflightFd
        case .setInflightFd: return .setInflightFd
        case .resetDevice: return .resetDevice
        case .getMaxMemSlots: return .getMaxMemSlots
        }
    }
}
