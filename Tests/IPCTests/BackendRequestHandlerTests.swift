import Glibc
import Testing
@testable import IPC
import SystemPackage

struct Step {
    var request: Request
    var payload: [UInt8] = []
    var fds: [FileDescriptor] = []
    var needReply = false
    init(_ request: Request, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false) {
        self.request = request; self.payload = payload; self.fds = fds; self.needReply = needReply
    }
}

/// Feeds `steps` to a handler on one thread (socket buffers hold requests and replies).
/// Returns the first error and the replies received so far.
func drive(_ device: FakeDevice, _ steps: [Step]) throws -> (VhostUserError?, [ReceivedMessage]) {
    let (front, back) = try Connection.pair()
    let handler = BackendRequestHandler(connection: back, device: device)
    var replies: [ReceivedMessage] = []
    var ackNegotiated = false
    for step in steps {
        try front.send(.request(step.request, size: step.payload.count, needReply: step.needReply), payload: step.payload, fds: step.fds)
        do {
            _ = try handler.handleNext()
        } catch {
            if step.needReply && ackNegotiated { replies.append(try front.receive()) }
            return (error, replies)
        }
        if step.request.hasInherentReply || (step.needReply && ackNegotiated) { replies.append(try front.receive()) }
        if step.request == .setProtocolFeatures { ackNegotiated = (try decodeU64(step.payload)) & ProtocolFeature.replyAck.mask != 0 }
    }
    return (nil, replies)
}

let version1: UInt64 = 1 << 32
let protoBit = VhostUser.protocolFeaturesBit
let addr0 = VringAddress(index: 0, descriptorTable: 0x7000_0000_0000, usedRing: 0x7000_0000_2000, availableRing: 0x7000_0000_1000)
let region0 = MemoryRegion(guestAddress: 0, size: 1 << 20, userAddress: 0x7000_0000_0000, mmapOffset: 0)
func kick(_ i: UInt8) -> [UInt8] { VringFdPayload(index: i, noFd: true).encode() }

@Suite struct BackendRequestHandlerTests {
    @Test func fullHandshakeOverSocketpair() throws {
        let device = FakeDevice()
        let (front, back) = try Connection.pair()
        let handler = BackendRequestHandler(connection: back, device: device)
        let server = Background { try handler.run() }
        let fe = Frontend(connection: front)

        #expect(try fe.getFeatures() == device.deviceFeatures | protoBit)
        try fe.setOwner()
        let offered = try fe.getProtocolFeatures()
        #expect(offered == .protocolFeatures(.mq, .replyAck, .config, .inflightShmfd, .resetDevice))
        try fe.setProtocolFeatures(.protocolFeatures(.mq, .replyAck, .config, .inflightShmfd))
        #expect(try fe.getQueueNum() == 2)
        try fe.setFeatures(version1 | protoBit)

        let memory = try makeMemFD(size: 1 << 20)
        try fe.setMemTable([region0], fds: [memory.descriptor])
        try fe.setVringNum(index: 0, num: 256)
        try fe.setVringAddr(addr0)
        try fe.setVringBase(index: 0, base: 5)
        let kickFD = try makeEventFD(), callFD = try makeEventFD()
        try fe.setVringCall(index: 0, fd: callFD.descriptor)
        try fe.setVringKick(index: 0, fd: kickFD.descriptor)
        #expect(device.started.isEmpty)             // PROTOCOL_FEATURES: disabled until enabled
        try fe.setVringEnable(index: 0, enabled: true)
        #expect(device.started == [0])              // REPLY_ACK: state is settled when the call returns

        // fds arrived working: kick from the front-end, read in the device, and back.
        #expect(signal(kickFD, 3))
        #expect(readCounter(try #require(device.kicks[0] ?? nil)) == 3)
        #expect(signal(try #require(device.calls[0] ?? nil), 1))
        #expect(readCounter(callFD) == 1)
        // The memory fd is the same 1 MiB memfd.
        #expect(lseek(device.regions[0].fd.rawValue, 0, SEEK_END) == 1 << 20)
        #expect(device.regions[0].region == region0)

        #expect(try fe.getConfig(offset: 4, size: 8) == Array(device.configSpace[4..<12]))
        try fe.setConfig(offset: 2, data: [0xaa])
        let (inflight, inflightFD) = try fe.getInflightFd(numQueues: 2, queueSize: 256)
        #expect(inflight.mmapSize == 8192 && inflight.numQueues == 2)
        #expect(lseek(inflightFD.rawValue, 0, SEEK_END) == 8192)
        try fe.setVringErr(index: 1, fd: nil)
        #expect(try fe.getVringBase(index: 0) == 42)
        #expect(device.started.isEmpty)

        front.shutdown()
        try server.wait()
        #expect(device.ackedFeatures == version1)
        #expect(device.setups[0] == QueueSetup(size: 256, descriptorTable: addr0.descriptorTable, availableRing: addr0.availableRing,
                                               usedRing: addr0.usedRing, nextAvailIndex: 5))
        #expect(device.events == ["features", "mem", "call0", "kick0", "configure0", "start0", "err1", "stop0"])
        #expect(device.configWrites.count == 1 && device.configWrites[0].1 == [0xaa])
    }

    @Test func withoutProtocolFeaturesKickStartsRing() throws {
        let device = FakeDevice()
        let memory = try makeMemFD(size: 1 << 20)
        let (error, _) = try drive(device, [
            Step(.setOwner), Step(.setFeatures, encodeU64(version1)),
            Step(.setMemTable, MemoryTable(regions: [region0]).encode(), fds: [memory.descriptor]),
            Step(.setVringNum, VringState(index: 0, num: 128).encode()), Step(.setVringAddr, addr0.encode()),
            Step(.setVringKick, kick(0)),
        ])
        #expect(error == nil)
        #expect(device.started == [0])
        #expect(device.kicks[0] != nil && device.kicks[0]! == nil)    // polling: no fd
    }

    @Test func replyAckReportsFailure() throws {
        let device = FakeDevice()
        let (error, replies) = try drive(device, [
            Step(.setProtocolFeatures, encodeU64(ProtocolFeature.replyAck.mask)),
            Step(.setOwner, needReply: true),
            Step(.setVringNum, VringState(index: 0, num: 3).encode(), needReply: true),
        ])
        #expect(error == .invalidMessage(.setVringNum, .vringNumInvalid(3, max: 256)))
        #expect(replies.map { $0.payload } == [encodeU64(0), encodeU64(1)])
        #expect(replies.allSatisfy { $0.header.isReply && $0.header.request == Request.setVringNum.rawValue || $0.header.request == 3 })
    }

    @Test func getConfigFailureIsEmptyReply() throws {
        let device = FakeDevice()
        let (error, replies) = try drive(device, [
            Step(.setProtocolFeatures, encodeU64(ProtocolFeature.config.mask)),
            Step(.getConfig, DeviceConfig(offset: 12, size: 8, data: [UInt8](repeating: 0, count: 8)).encode()),
            Step(.getFeatures),
        ])
        #expect(error == nil)
        #expect(replies.count == 2 && replies[0].payload.isEmpty && replies[0].header.size == 0)
    }

    @Test func deviceErrorsAreTyped() throws {
        let device = FakeDevice()
        device.failStart = true
        let memory = try makeMemFD(size: 4096)
        let (error, _) = try drive(device, [
            Step(.setOwner), Step(.setFeatures, encodeU64(version1)),
            Step(.setMemTable, MemoryTable(regions: [region0]).encode(), fds: [memory.descriptor]),
            Step(.setVringNum, VringState(index: 0, num: 128).encode()), Step(.setVringAddr, addr0.encode()),
            Step(.setVringKick, kick(0)),
        ])
        guard case .deviceFailed(.setVringKick, _)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    static let owned: [Step] = [Step(.setOwner)]
    static let ready: [Step] = [Step(.setOwner), Step(.setFeatures, encodeU64(version1 | protoBit))]

    static let violations: [(String, [Step], VhostUserError)] = [
        ("vring before owner", [Step(.setVringNum, VringState(index: 0, num: 8).encode())],
         .protocolViolation(.setVringNum, .ownerNotSet)),
        ("features before owner", [Step(.setFeatures, encodeU64(version1))], .protocolViolation(.setFeatures, .ownerNotSet)),
        ("owner twice", owned + [Step(.setOwner)], .protocolViolation(.setOwner, .ownerAlreadySet)),
        ("index out of range", owned + [Step(.setVringNum, VringState(index: 2, num: 8).encode())],
         .invalidMessage(.setVringNum, .vringIndexOutOfRange(2, queueCount: 2))),
        ("kick index out of range", owned + [Step(.setVringKick, kick(200))],
         .invalidMessage(.setVringKick, .vringIndexOutOfRange(200, queueCount: 2))),
        ("num 0", owned + [Step(.setVringNum, VringState(index: 0, num: 0).encode())],
         .invalidMessage(.setVringNum, .vringNumInvalid(0, max: 256))),
        ("num not power of two", owned + [Step(.setVringNum, VringState(index: 0, num: 96).encode())],
         .invalidMessage(.setVringNum, .vringNumInvalid(96, max: 256))),
        ("num too big", owned + [Step(.setVringNum, VringState(index: 1, num: 512).encode())],
         .invalidMessage(.setVringNum, .vringNumInvalid(512, max: 256))),
        ("base beyond 16 bits", owned + [Step(.setVringBase, VringState(index: 0, num: 0x10000).encode())],
         .invalidMessage(.setVringBase, .vringBaseOutOfRange(0x10000))),
        ("unoffered feature", owned + [Step(.setFeatures, encodeU64(1 << 40))],
         .protocolViolation(.setFeatures, .unofferedFeatures(1 << 40))),
        ("packed ring never offered", owned + [Step(.setFeatures, encodeU64(1 << 34))],
         .protocolViolation(.setFeatures, .unofferedFeatures(1 << 34))),
        ("unoffered protocol feature", [Step(.setProtocolFeatures, encodeU64(ProtocolFeature.logShmfd.mask))],
         .protocolViolation(.setProtocolFeatures, .unofferedProtocolFeatures(2))),
        ("config not negotiated", owned + [Step(.getConfig, DeviceConfig(offset: 0, size: 4, data: [0, 0, 0, 0]).encode())],
         .protocolViolation(.getConfig, .protocolFeatureNotNegotiated(.config))),
        ("max mem slots never offered", [Step(.getMaxMemSlots)],
         .protocolViolation(.getMaxMemSlots, .protocolFeatureNotNegotiated(.configureMemSlots))),
        ("reset device not negotiated", owned + [Step(.resetDevice)],
         .protocolViolation(.resetDevice, .protocolFeatureNotNegotiated(.resetDevice))),
        ("enable without PROTOCOL_FEATURES", owned + [Step(.setFeatures, encodeU64(version1)), Step(.setVringEnable, VringState(index: 0, num: 1).encode())],
         .protocolViolation(.setVringEnable, .protocolFeaturesNotNegotiated)),
        ("kick before mem table", owned + [Step(.setFeatures, encodeU64(version1)), Step(.setVringKick, kick(0))],
         .protocolViolation(.setVringKick, .memoryTableNotSet)),
        ("enable before features", owned + [Step(.setVringKick, kick(0)), Step(.setVringEnable, VringState(index: 0, num: 1).encode())],
         .protocolViolation(.setVringEnable, .featuresNotSet)),
        ("num on started ring", ready + [Step(.setVringKick, kick(1)), Step(.setVringNum, VringState(index: 1, num: 8).encode())],
         .protocolViolation(.setVringNum, .ringStarted(1))),
        ("addr change on started ring", ready + [Step(.setVringAddr, addr0.encode()), Step(.setVringKick, kick(0)),
                                                 Step(.setVringAddr, VringAddress(index: 0, descriptorTable: 0, usedRing: 0, availableRing: 0).encode())],
         .protocolViolation(.setVringAddr, .ringAddressChangedWhileStarted(0))),
        ("log flag", owned + [Step(.setVringAddr, VringAddress(index: 0, flags: 1, descriptorTable: 0, usedRing: 0, availableRing: 0).encode())],
         .invalidMessage(.setVringAddr, .loggingUnsupported)),
        ("inflight not negotiated", owned + [Step(.getInflightFd, InflightDescription(numQueues: 1, queueSize: 8).encode())],
         .protocolViolation(.getInflightFd, .protocolFeatureNotNegotiated(.inflightShmfd))),
        ("unknown request", [], .unsupportedRequest(99)),
    ]

    @Test(arguments: violations.indices)
    func protocolViolations(i: Int) throws {
        let (name, steps, expected) = Self.violations[i]
        let device = FakeDevice()
        let error: VhostUserError?
        if case .unsupportedRequest = expected {
            let (front, back) = try Connection.pair()
            try front.send(MessageHeader(request: 99, flags: 1, size: 0))
            error = catchError { try BackendRequestHandler(connection: back, device: device).handleNext() }
        } else {
            error = try drive(device, steps).0
        }
        #expect(error == expected, "\(name)")
        // Nothing half-applied: no queue was started or configured.
        #expect(device.started.isEmpty && device.setups.isEmpty, "\(name)")
    }

    @Test func kickRejectedBeforeTouchingDevice() throws {
        let device = FakeDevice()
        let e = try makeEventFD()
        let (error, _) = try drive(device, [
            Step(.setOwner), Step(.setFeatures, encodeU64(version1)),
            Step(.setVringKick, VringFdPayload(index: 0, noFd: false).encode(), fds: [e.descriptor]),
        ])
        #expect(error == .protocolViolation(.setVringKick, .memoryTableNotSet))
        #expect(device.kicks.isEmpty)
    }

    @Test func disconnectEndsRunCleanly() throws {
        let (front, back) = try Connection.pair()
        let handler = BackendRequestHandler(connection: back, device: FakeDevice())
        try front.send(.request(.setOwner, size: 0))
        front.shutdown()
        try handler.run()
    }
}
