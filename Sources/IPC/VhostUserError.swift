/// Every failure of the vhost-user layer. A hostile or buggy peer produces one of these,
/// never a crash; the connection is then closed by whoever runs it.
public enum VhostUserError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed the socket between messages.
    case disconnected
    /// The peer closed the socket in the middle of a message.
    case truncatedMessage(received: Int, expected: Int)
    /// A system call failed.
    case system(operation: String, errno: CInt)
    /// More file descriptors arrived than one message may carry (MSG_CTRUNC); all were closed.
    case tooManyFds
    /// File descriptors arrived attached to payload bytes instead of the header.
    case fdsOutsideHeader
    /// The header announced a payload larger than any valid message; nothing more was read.
    case payloadTooLarge(request: UInt32, size: UInt32)
    /// The request number is not one this implementation handles.
    case unsupportedRequest(UInt32)
    /// The message is malformed on its own (size, flags, fds, payload fields).
    case invalidMessage(Request, MessageFault)
    /// The message is well formed but not allowed in the current protocol state.
    case protocolViolation(Request, ProtocolFault)
    /// The device refused a well-formed request.
    case deviceFailed(Request, String)
    /// (Front-end) the back-end's reply is malformed.
    case invalidReply(Request, ReplyFault)
    /// (Front-end) the back-end answered a REPLY_ACK or GET_CONFIG with a failure.
    case backendRejected(Request, UInt64)
    /// A caller-side misuse of the API (e.g. more than 8 fds to send).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .disconnected: return "vhost-user peer disconnected"
        case let .truncatedMessage(got, want): return "vhost-user message truncated: \(got) of \(want) bytes"
        case let .system(op, e): return "\(op) failed: errno \(e)"
        case .tooManyFds: return "vhost-user message carried more than \(VhostUser.maxFds) fds"
        case .fdsOutsideHeader: return "vhost-user fds arrived with payload bytes, not with the header"
        case let .payloadTooLarge(r, s): return "vhost-user request \(r): payload of \(s) bytes exceeds \(VhostUser.maxPayloadSize)"
        case let .unsupportedRequest(n): return "unsupported vhost-user request \(n)"
        case let .invalidMessage(r, f): return "invalid \(r.name): \(f)"
        case let .protocolViolation(r, f): return "\(r.name) not allowed: \(f)"
        case let .deviceFailed(r, why): return "device rejected \(r.name): \(why)"
        case let .invalidReply(r, f): return "invalid reply to \(r.name): \(f)"
        case let .backendRejected(r, code): return "back-end rejected \(r.name) (status \(code))"
        case let .invalidArgument(why): return "invalid argument: \(why)"
        }
    }
}

/// What is wrong with a single message, independent of protocol state.
public enum MessageFault: Error, Equatable, Sendable {
    case badVersion(UInt32)
    case replyFlagOnRequest
    case reservedFlags(UInt32)
    case wrongSize(expected: Int, actual: Int)
    case wrongFdCount(expected: Int, actual: Int)
    case regionCount(UInt32)
    case emptyRegion(index: Int)
    case regionOverflow(index: Int)
    case regionsOverlap(Int, Int)
    case configTooLarge(UInt32)
    case configOutOfBounds(offset: UInt32, size: UInt32)
    case configFlags(UInt32)
    case reservedBits(UInt64)
    case vringIndexOutOfRange(UInt32, queueCount: Int)
    case vringNumInvalid(UInt32, max: Int)
    case vringBaseOutOfRange(UInt32)
    case vringEnableValue(UInt32)
    case inflightGeometry(numQueues: UInt16, queueSize: UInt16)
    case loggingUnsupported
}

/// Why a well-formed message is refused in the current state.
public enum ProtocolFault: Equatable, Sendable {
    case ownerNotSet
    case ownerAlreadySet
    case protocolFeaturesNotNegotiated
    case unofferedFeatures(UInt64)
    case unofferedProtocolFeatures(UInt64)
    case protocolFeatureNotNegotiated(ProtocolFeature)
    case featuresNotSet
    case memoryTableNotSet
    case ringStarted(Int)
    case ringNotConfigured(Int, missing: String)
    case ringAddressChangedWhileStarted(Int)
}

/// What is wrong with a back-end's reply (front-end side).
public enum ReplyFault: Equatable, Sendable {
    case replyFlagMissing
    case badVersion(UInt32)
    case wrongRequest(UInt32)
    case wrongSize(expected: Int, actual: Int)
    case wrongFdCount(expected: Int, actual: Int)
    case fieldMismatch(String)
}
