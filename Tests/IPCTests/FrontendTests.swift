import Foundation
import Glibc
import Testing
@testable import IPC
import SystemPackage
import TestFrontend
import TestSupport

/// Replies are written into the socket before the call, so one thread suffices.
func frontendWithCannedReplies(_ replies: [(MessageHeader, [UInt8], [FileDescriptor])]) throws -> (Frontend, Connection) {
    let (front, back) = try Connection.pair()
    for (h, p, fds) in replies { try back.send(h, payload: p, fds: fds) }
    return (Frontend(connection: front), back)
}

@Suite struct FrontendTests {
    @Test func validRepliesAccepted() throws {
        let (fe, back) = try frontendWithCannedReplies([
            (.reply(.getFeatures, size: 8), encodeU64(0xabc), []),
            (.reply(.getVringBase, size: 8), VringState(index: 1, num: 77).encode(), []),
        ])
        #expect(try fe.getFeatures() == 0xabc)
        #expect(try fe.getVringBase(index: 1) == 77)
        #expect(try back.receive().header == .request(.getFeatures, size: 0))
        let second = try back.receive()
        #expect(second.payload == VringState(index: 1, num: 0).encode())
    }

    static let badReplies: [(String, MessageHeader, [UInt8], ReplyFault)] = [
        ("no reply flag", MessageHeader(request: 1, flags: 1, size: 8), encodeU64(0), .replyFlagMissing),
        ("bad version", MessageHeader(request: 1, flags: 2 | MessageHeader.replyFlag, size: 8), encodeU64(0), .badVersion(2)),
        ("other request", .reply(.getProtocolFeatures, size: 8), encodeU64(0), .wrongRequest(15)),
        ("short", .reply(.getFeatures, size: 4), [0, 0, 0, 0], .wrongSize(expected: 8, actual: 4)),
    ]

    @Test(arguments: badReplies.indices)
    func badRepliesRejected(i: Int) throws {
        let (name, header, payload, fault) = Self.badReplies[i]
        let (fe, back) = try frontendWithCannedReplies([(header, payload, [])])
        #expect(catchError { try fe.getFeatures() } == .invalidReply(.getFeatures, fault), "\(name)")
        withExtendedLifetime(back) {}
    }

    @Test func unexpectedFdInReplyRejected() throws {
        let e = try makeEventFD()
        let (fe, back) = try frontendWithCannedReplies([(.reply(.getFeatures, size: 8), encodeU64(0), [e.descriptor])])
        #expect(catchError { try fe.getFeatures() } == .invalidReply(.getFeatures, .wrongFdCount(expected: 0, actual: 1)))
        withExtendedLifetime(back) {}
    }

    @Test func vringBaseIndexMismatchRejected() throws {
        let (fe, back) = try frontendWithCannedReplies([(.reply(.getVringBase, size: 8), VringState(index: 0, num: 1).encode(), [])])
        #expect(catchError { try fe.getVringBase(index: 1) } == .invalidReply(.getVringBase, .fieldMismatch("index 0")))
        withExtendedLifetime(back) {}
    }

    @Test func replyAckSetsNeedReplyAndChecksStatus() throws {
        let (fe, back) = try frontendWithCannedReplies([
            (.reply(.setOwner, size: 8), encodeU64(0), []),
            (.reply(.setVringNum, size: 8), encodeU64(1), []),
        ])
        try fe.setProtocolFeatures(.protocolFeatures(.replyAck))       // no ack expected for this one
        try fe.setOwner()
        #expect(catchError { try fe.setVringNum(index: 0, num: 8) } == .backendRejected(.setVringNum, 1))
        #expect(try back.receive().header.needsReply == false)
        #expect(try back.receive().header.needsReply == true)
        #expect(try back.receive().header.needsReply == true)
    }

    @Test func emptyConfigReplyIsRejection() throws {
        let (fe, back) = try frontendWithCannedReplies([(.reply(.getConfig, size: 0), [], [])])
        #expect(catchError { try fe.getConfig(offset: 0, size: 8) } == .backendRejected(.getConfig, 1))
        withExtendedLifetime(back) {}
    }

    @Test func callerMisuseRejectedLocally() throws {
        let (fe, _) = try frontendWithCannedReplies([])
        #expect(throws: VhostUserError.self) { try fe.setVringKick(index: 256, fd: nil) }
        #expect(throws: VhostUserError.self) { try fe.setMemTable([], fds: []) }
        #expect(throws: VhostUserError.self) { try fe.getConfig(offset: 0, size: 300) }
    }

    /// Our front-end against QEMU's vhost-user-blk export (libvhost-user): proves the codec
    /// speaks the real protocol, including fd passing, REPLY_ACK and a ring start/stop.
    @Test(.timeLimit(.minutes(1)))
    func interoperatesWithQemuStorageDaemon() throws {
        guard Prerequisite.require(QemuStorageDaemon.executable != nil, "qemu-storage-daemon not found (apt-get install qemu-system-common)") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ipc-qsd-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        #expect(FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20)))
        let daemon = try QemuStorageDaemon(image: image, socketPath: dir.appendingPathComponent("vhost.sock").path,
                                           logPath: dir.appendingPathComponent("qsd.log").path)
        defer { daemon.stop() }
        let fe = Frontend(connection: try daemon.connect())

        let features = try fe.getFeatures()
        #expect(features & VhostUser.protocolFeaturesBit != 0)
        #expect(features & version1 != 0)
        try fe.setOwner()
        let offered = try fe.getProtocolFeatures()
        let wanted: UInt64 = .protocolFeatures(.mq, .replyAck, .config)
        #expect(offered & wanted == wanted)
        try fe.setProtocolFeatures(offered & wanted)
        let queues = try fe.getQueueNum()
        #expect(queues >= 1)

        // virtio-blk config: capacity (u64, 512-byte sectors) at 0, blk_size (u32) at 20.
        let config = try fe.getConfig(offset: 0, size: 24)
        var reader = ByteReader(config)
        #expect(reader.u64() == 2048)
        reader.skip(12)
        #expect(reader.u32() == 512)

        // With REPLY_ACK negotiated every command below is acknowledged by the daemon.
        try fe.setFeatures(version1 | VhostUser.protocolFeaturesBit)
        let memory = try makeMemFD(size: 1 << 20)
        let base: UInt64 = 0x7f00_0000_0000
        try fe.setMemTable([MemoryRegion(guestAddress: 0, size: 1 << 20, userAddress: base, mmapOffset: 0)], fds: [memory.descriptor])
        try fe.setVringNum(index: 0, num: 128)
        try fe.setVringAddr(VringAddress(index: 0, descriptorTable: base, usedRing: base + 0x2000, availableRing: base + 0x1000))
        try fe.setVringBase(index: 0, base: 0)
        let kickFD = try makeEventFD(), callFD = try makeEventFD()
        try fe.setVringCall(index: 0, fd: callFD.descriptor)
        try fe.setVringKick(index: 0, fd: kickFD.descriptor)
        try fe.setVringEnable(index: 0, enabled: true)
        #expect(try fe.getVringBase(index: 0) == 0)        // empty ring: nothing consumed
    }
}
