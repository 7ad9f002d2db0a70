import Testing
@testable import IPC

/// A valid request payload and fd count for every request we decode.
let validRequests: [(Request, [UInt8], Int)] = [
    (.getFeatures, [], 0),
    (.setFeatures, encodeU64(1 << 32), 0),
    (.setOwner, [], 0),
    (.resetOwner, [], 0),
    (.setMemTable, MemoryTable(regions: [MemoryRegion(guestAddress: 0, size: 4096, userAddress: 0x1000, mmapOffset: 0)]).encode(), 1),
    (.setVringNum, VringState(index: 0, num: 256).encode(), 0),
    (.setVringAddr, VringAddress(index: 0, descriptorTable: 0x1000, usedRing: 0x3000, availableRing: 0x2000).encode(), 0),
    (.setVringBase, VringState(index: 0, num: 0).encode(), 0),
    (.getVringBase, VringState(index: 0, num: 0).encode(), 0),
    (.setVringKick, VringFdPayload(index: 0, noFd: false).encode(), 1),
    (.setVringCall, VringFdPayload(index: 1, noFd: false).encode(), 1),
    (.setVringErr, VringFdPayload(index: 1, noFd: true).encode(), 0),
    (.getProtocolFeatures, [], 0),
    (.setProtocolFeatures, encodeU64(8), 0),
    (.getQueueNum, [], 0),
    (.setVringEnable, VringState(index: 0, num: 1).encode(), 0),
    (.getConfig, DeviceConfig(offset: 0, size: 8, data: [UInt8](repeating: 0, count: 8)).encode(), 0),
    (.setConfig, DeviceConfig(offset: 4, size: 2, data: [1, 2]).encode(), 0),
    (.getInflightFd, InflightDescription(numQueues: 1, queueSize: 128).encode(), 0),
    (.setInflightFd, InflightDescription(mmapSize: 4096, numQueues: 1, queueSize: 128).encode(), 1),
    (.resetDevice, [], 0),
    (.getMaxMemSlots, [], 0),
]

func decode(_ request: UInt32, flags: UInt32 = 1, payload: [UInt8], fds: Int, size: UInt32? = nil) throws(VhostUserError) -> FrontendMessage {
    let header = MessageHeader(request: request, flags: flags, size: size ?? UInt32(payload.count))
    return try FrontendMessage.decode(header: header, payload: payload, fdCount: fds)
}

@Suite struct MessageTests {
    @Test func headerRoundTrip() throws {
        let h = MessageHeader.request(.setVringKick, size: 8, needReply: true)
        #expect(h.encode() == [12, 0, 0, 0, 0x09, 0, 0, 0, 8, 0, 0, 0])
        #expect(try MessageHeader.decode(from: h.encode()) == h)
        #expect(h.needsReply && !h.isReply && h.version == 1)
        let r = MessageHeader.reply(.getFeatures, size: 8)
        #expect(r.flags == 0x5 && r.isReply)
    }

    @Test func requestNumbersMatchSpec() {
        let expected: [(Request, UInt32)] = [
            (.getFeatures, 1), (.setFeatures, 2), (.setOwner, 3), (.resetOwner, 4), (.setMemTable, 5),
            (.setLogBase, 6), (.setLogFd, 7), (.setVringNum, 8), (.setVringAddr, 9), (.setVringBase, 10),
            (.getVringBase, 11), (.setVringKick, 12), (.setVringCall, 13), (.setVringErr, 14),
            (.getProtocolFeatures, 15), (.setProtocolFeatures, 16), (.getQueueNum, 17), (.setVringEnable, 18),
            (.getConfig, 24), (.setConfig, 25), (.getInflightFd, 31), (.setInflightFd, 32),
            (.resetDevice, 34), (.getMaxMemSlots, 36),
        ]
        for (r, n) in expected { #expect(r.rawValue == n, "\(r.name)") }
        #expect(ProtocolFeature.replyAck.mask == 8 && ProtocolFeature.config.mask == 1 << 9)
        #expect(ProtocolFeature.inflightShmfd.rawValue == 12 && ProtocolFeature.configureMemSlots.rawValue == 15)
        #expect(ProtocolFeature.status.rawValue == 16 && ProtocolFeature.backendReq.rawValue == 5)
        #expect(VhostUser.protocolFeaturesBit == 1 << 30)
    }

    @Test(arguments: validRequests.indices)
    func validRequestDecodes(i: Int) throws {
        let (request, payload, fds) = validRequests[i]
        let message = try decode(request.rawValue, payload: payload, fds: fds)
        #expect(message.request == request)
        // need_reply is allowed on any request.
        _ = try decode(request.rawValue, flags: 1 | MessageHeader.needReplyFlag, payload: payload, fds: fds)
    }

    @Test(arguments: validRequests.indices)
    func wrongSizeRejected(i: Int) {
        let (request, payload, fds) = validRequests[i]
        let longer = payload + [0]
        guard case .invalidMessage(request, .wrongSize)? = catchError({ try decode(request.rawValue, payload: longer, fds: fds) }) else {
            Issue.record("\(request.name): one byte too many accepted"); return
        }
        if !payload.isEmpty {
            guard case .invalidMessage(request, .wrongSize)? = catchError({ try decode(request.rawValue, payload: Array(payload.dropLast()), fds: fds) }) else {
                Issue.record("\(request.name): one byte too few accepted"); return
            }
        }
        // Header size disagreeing with the bytes present.
        #expect(catchError { try decode(request.rawValue, payload: payload, fds: fds, size: UInt32(payload.count + 4)) }
            == .invalidMessage(request, .wrongSize(expected: payload.count + 4, actual: payload.count)))
    }

    @Test(arguments: validRequests.indices)
    func wrongFdCountRejected(i: Int) {
        let (request, payload, fds) = validRequests[i]
        #expect(catchError { try decode(request.rawValue, payload: payload, fds: fds + 1) }
            == .invalidMessage(request, .wrongFdCount(expected: fds, actual: fds + 1)))
        if fds > 0 {
            #expect(catchError { try decode(request.rawValue, payload: payload, fds: fds - 1) }
                == .invalidMessage(request, .wrongFdCount(expected: fds, actual: fds - 1)))
        }
    }

    @Test(arguments: [
        (UInt32(0), MessageFault.badVersion(0)), (2, .badVersion(2)), (3, .badVersion(3)),
        (1 | MessageHeader.replyFlag, .replyFlagOnRequest), (1 | 0x10, .reservedFlags(0x11)),
        (1 | 0x8000_0000, .reservedFlags(0x8000_0001)),
    ])
    func badFlagsRejected(flags: UInt32, fault: MessageFault) {
        #expect(catchError { try decode(Request.getFeatures.rawValue, flags: flags, payload: [], fds: 0) }
            == .invalidMessage(.getFeatures, fault))
    }

    @Test(arguments: [UInt32(0), 19, 20, 21, 22, 23, 26, 33, 35, 37, 40, 99, .max])
    func unknownRequestRejected(n: UInt32) {
        let error = catchError { try decode(n, payload: [], fds: 0) }
        #expect(error == .unsupportedRequest(n))
        #expect(error?.description == "unsupported vhost-user request \(n)")
    }

    @Test func loggingRejected() {
        #expect(catchError { try decode(6, payload: encodeU64(0), fds: 1) } == .invalidMessage(.setLogBase, .loggingUnsupported))
        #expect(catchError { try decode(7, payload: [], fds: 1) } == .invalidMessage(.setLogFd, .loggingUnsupported))
    }

    @Test func vringFdRules() {
        // Bit 8 (no fd) with an fd, and without bit 8 and no fd.
        #expect(catchError { try decode(12, payload: VringFdPayload(index: 0, noFd: true).encode(), fds: 1) }
            == .invalidMessage(.setVringKick, .wrongFdCount(expected: 0, actual: 1)))
        #expect(catchError { try decode(13, payload: VringFdPayload(index: 0, noFd: false).encode(), fds: 0) }
            == .invalidMessage(.setVringCall, .wrongFdCount(expected: 1, actual: 0)))
        #expect(catchError { try decode(12, payload: encodeU64(1 << 9), fds: 0) }
            == .invalidMessage(.setVringKick, .reservedBits(1 << 9)))
    }

    @Test func memTableRules() {
        let region = MemoryRegion(guestAddress: 0, size: 4096, userAddress: 0, mmapOffset: 0)
        #expect(catchError { try decode(5, payload: MemoryTable(regions: []).encode(), fds: 0) }
            == .invalidMessage(.setMemTable, .regionCount(0)))
        let nine = (0..<9).map { MemoryRegion(guestAddress: UInt64($0) << 20, size: 4096, userAddress: UInt64($0) << 20, mmapOffset: 0) }
        #expect(catchError { try decode(5, payload: MemoryTable(regions: nine).encode(), fds: 8) }
            == .invalidMessage(.setMemTable, .regionCount(9)))
        // Count says 2, one region present.
        var lying = MemoryTable(regions: [region]).encode()
        lying[0] = 2
        #expect(catchError { try decode(5, payload: lying, fds: 1) }
            == .invalidMessage(.setMemTable, .wrongSize(expected: 72, actual: 40)))
        #expect(catchError { try decode(5, payload: [1, 0, 0], fds: 0) }
            == .invalidMessage(.setMemTable, .wrongSize(expected: 8, actual: 3)))
        #expect(catchError { try decode(5, payload: MemoryTable(regions: [region, region]).encode(), fds: 2) }
            == .invalidMessage(.setMemTable, .regionsOverlap(0, 1)))
    }

    @Test func configRules() {
        let big = DeviceConfig(offset: 0, size: 257, data: [UInt8](repeating: 0, count: 257)).encode()
        #expect(catchError { try decode(24, payload: big, fds: 0) } == .invalidMessage(.getConfig, .configTooLarge(257)))
        let wrap = DeviceConfig(offset: .max, size: 4, data: [0, 0, 0, 0]).encode()
        #expect(catchError { try decode(25, payload: wrap, fds: 0) } == .invalidMessage(.setConfig, .configOutOfBounds(offset: .max, size: 4)))
        // size field larger than the bytes present
        var short = DeviceConfig(offset: 0, size: 4, data: [1, 2, 3, 4]).encode()
        short[4] = 8
        #expect(catchError { try decode(25, payload: short, fds: 0) } == .invalidMessage(.setConfig, .wrongSize(expected: 20, actual: 16)))
    }

    @Test func otherFieldRules() {
        #expect(catchError { try decode(18, payload: VringState(index: 0, num: 2).encode(), fds: 0) }
            == .invalidMessage(.setVringEnable, .vringEnableValue(2)))
        let logged = VringAddress(index: 0, flags: 2, descriptorTable: 0, usedRing: 0, availableRing: 0).encode()
        #expect(catchError { try decode(9, payload: logged, fds: 0) } == .invalidMessage(.setVringAddr, .reservedBits(2)))
    }
}

func catchError<T>(_ body: () throws -> T) -> VhostUserError? {
    do { _ = try body(); return nil } catch { return error as? VhostUserError }
}
