import CShim
import Glibc
import Testing
@testable import IPC
import SystemPackage
import TestFrontend

/// A compromised worker answering volt-vmm's front-end with random replies (seeded):
/// wrong request codes, missing or stray reply flags, sizes that lie, random payloads and
/// stray fds. Every call returns or throws — the VMM's process never traps — and what a
/// call returns has the shape it promises.
@Suite struct HostileBackendTests {
    static func reply(for request: Request, _ r: inout SplitMix) -> (MessageHeader, [UInt8], [FileDescriptor], Int32?) {
        func below(_ n: UInt64) -> UInt64 { r.next() % n }
        let code = below(100) < 80 ? request.rawValue : (below(2) == 0 ? Request.allCases.randomElement(using: &r)!.rawValue
                                                                       : UInt32(truncatingIfNeeded: r.next()))
        let flags: UInt32 = below(100) < 85 ? VhostUser.version | MessageHeader.replyFlag : UInt32(truncatingIfNeeded: r.next())
        let sizes = [0, 8, 12, 16, 40, Int(below(300))]
        let payload = (0..<sizes[Int(below(UInt64(sizes.count)))]).map { _ in UInt8(truncatingIfNeeded: r.next()) }
        let size = below(100) < 95 ? UInt32(payload.count) : UInt32(truncatingIfNeeded: r.next())
        var fd: Int32?
        if below(100) < 15 { fd = volt_memfd_create("hostile-reply", UInt32(VOLT_MFD_CLOEXEC)) }
        return (MessageHeader(request: code, flags: flags, size: size), payload, fd.map { $0 >= 0 ? [FileDescriptor(rawValue: $0)] : [] } ?? [], fd)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomRepliesNeverTrapTheFrontend(seed: UInt64) throws {
        var r = SplitMix(state: seed)
        var threw = 0, returned = 0
        for _ in 0..<40 {
            let (front, back) = try Connection.pair()
            front.setReceiveTimeout(milliseconds: 200)   // a call waiting for a reply that never comes
            let frontend = Frontend(connection: front)
            for _ in 0..<10 {
                let calls: [(Request, () throws -> Void)] = [
                    (.getFeatures, { _ = try frontend.getFeatures() }),
                    (.getProtocolFeatures, { _ = try frontend.getProtocolFeatures() }),
                    (.setProtocolFeatures, { try frontend.setProtocolFeatures(r.next() & ProtocolFeature.replyAck.mask) }),
                    (.getQueueNum, { _ = try frontend.getQueueNum() }),
                    (.getMaxMemSlots, { _ = try frontend.getMaxMemSlots() }),
                    (.getVringBase, { _ = try frontend.getVringBase(index: 0) }),
                    (.setOwner, { try frontend.setOwner() }),
                    (.getConfig, {
                        let size = UInt32(r.next() % 64)
                        let data = try frontend.getConfig(offset: 0, size: size)
                        #expect(data.count == Int(size), "GET_CONFIG returned \(data.count) bytes for \(size)")
                    }),
                    (.getInflightFd, { _ = try frontend.getInflightFd(numQueues: 1, queueSize: 64) }),
                ]
                let (request, call) = calls[Int(r.next() % UInt64(calls.count))]
                var open: [Int32] = []
                for _ in 0..<(1 + r.next() % 2) {
                    let (header, payload, fds, fd) = Self.reply(for: request, &r)
                    try? back.send(header, payload: payload, fds: fds)
                    if let fd, fd >= 0 { open.append(fd) }
                }
                for fd in open { close(fd) }
                do { try call(); returned += 1 } catch { threw += 1 }
            }
        }
        #expect(threw > 0 && returned > 0, "threw \(threw), returned \(returned): the replies are all bad or all good")
    }
}
