import CShim
import Glibc
import Testing
@testable import IPC
import SystemPackage

@Suite struct ConnectionTests {
    @Test func roundTripWithFds() throws {
        let (a, b) = try Connection.pair()
        let e1 = try makeEventFD(), e2 = try makeEventFD()
        let payload = VringFdPayload(index: 1, noFd: false).encode()
        try a.send(.request(.setVringKick, size: 8), payload: payload, fds: [e1.descriptor, e2.descriptor])
        let m = try b.receive()
        #expect(m.header == .request(.setVringKick, size: 8))
        #expect(m.payload == payload)
        #expect(m.fds.count == 2)
        // The received fds refer to the same eventfds.
        #expect(signal(e1, 5))
        #expect(readCounter(m.fds[0]) == 5)
        #expect(signal(m.fds[1], 7))
        #expect(readCounter(e2) == 7)
    }

    @Test func backToBackMessagesStayFramed() throws {
        let (a, b) = try Connection.pair()
        try a.send(.request(.getFeatures, size: 0))
        try a.send(.request(.setFeatures, size: 8), payload: encodeU64(3))
        #expect(try b.receive().header.request == 1)
        let second = try b.receive()
        #expect(second.header.request == 2 && second.payload == encodeU64(3))
    }

    @Test func cleanEOFIsDisconnected() throws {
        let (a, b) = try Connection.pair()
        a.shutdown()
        #expect(throws: VhostUserError.disconnected) { try b.receive() }
    }

    @Test func eofInsideHeaderOrPayloadIsTruncated() throws {
        let (a, b) = try Connection.pair()
        _ = MessageHeader.request(.getFeatures, size: 0).encode().prefix(5).withUnsafeBytes { write(a.socket.rawValue, $0.baseAddress, 5) }
        a.shutdown()
        #expect(throws: VhostUserError.truncatedMessage(received: 5, expected: 12)) { try b.receive() }

        let (c, d) = try Connection.pair()
        let bytes = MessageHeader.request(.setFeatures, size: 8).encode() + [1, 2, 3]
        _ = bytes.withUnsafeBytes { write(c.socket.rawValue, $0.baseAddress, $0.count) }
        c.shutdown()
        #expect(throws: VhostUserError.truncatedMessage(received: 3, expected: 8)) { try d.receive() }
    }

    @Test func oversizedPayloadRejectedWithoutReading() throws {
        let (a, b) = try Connection.pair()
        let header = MessageHeader(request: 5, flags: 1, size: 4097)
        _ = header.encode().withUnsafeBytes { write(a.socket.rawValue, $0.baseAddress, $0.count) }
        #expect(throws: VhostUserError.payloadTooLarge(request: 5, size: 4097)) { try b.receive() }
    }

    /// Sends `count` copies of a pipe's write end; returns the read end (non-blocking).
    /// Once every copy is closed, reading it returns EOF instead of EAGAIN.
    func sendPipeWriteEnds(_ socket: CInt, count: Int, header: [UInt8]) throws -> OwnedFD {
        var p: [CInt] = [-1, -1]
        guard pipe(&p) == 0 else { throw TestError.setup("pipe") }
        let readEnd = OwnedFD(taking: p[0]), writeEnd = OwnedFD(taking: p[1])
        _ = fcntl(readEnd.rawValue, F_SETFL, O_NONBLOCK)
        var raw = [CInt](repeating: writeEnd.rawValue, count: count)
        let r = header.withUnsafeBytes { volt_sendmsg_fds(socket, $0.baseAddress, $0.count, &raw, CInt(count)) }
        guard r == header.count else { throw TestError.setup("sendmsg \(r)") }
        return readEnd
    }

    func allWriteEndsClosed(_ readEnd: OwnedFD) -> Bool {
        var byte: UInt8 = 0
        return read(readEnd.rawValue, &byte, 1) == 0
    }

    @Test func tooManyFdsAreAllClosed() throws {
        let (a, b) = try Connection.pair()
        let readEnd = try sendPipeWriteEnds(a.socket.rawValue, count: 9, header: MessageHeader.request(.getFeatures, size: 0).encode())
        #expect(throws: VhostUserError.tooManyFds) { try b.receive() }
        #expect(allWriteEndsClosed(readEnd))
    }

    @Test func fdsWithPayloadBytesRejected() throws {
        let (a, b) = try Connection.pair()
        _ = MessageHeader.request(.setFeatures, size: 8).encode().withUnsafeBytes { write(a.socket.rawValue, $0.baseAddress, 12) }
        let readEnd = try sendPipeWriteEnds(a.socket.rawValue, count: 1, header: encodeU64(1))
        #expect(throws: VhostUserError.fdsOutsideHeader) { try b.receive() }
        #expect(allWriteEndsClosed(readEnd))
    }

    @Test func fdsOfRejectedMessageAreClosed() throws {
        // A well-framed message whose validation fails: dropping it closes its fds.
        let (a, b) = try Connection.pair()
        let readEnd = try sendPipeWriteEnds(a.socket.rawValue, count: 2, header: MessageHeader.request(.getFeatures, size: 0).encode())
        do {
            let m = try b.receive()
            #expect(m.fds.count == 2)
            #expect(throws: VhostUserError.self) { try FrontendMessage.decode(header: m.header, payload: m.payload, fdCount: m.fds.count) }
        }
        #expect(allWriteEndsClosed(readEnd))
    }

    @Test func sendRejectsMisuse() throws {
        let (a, _) = try Connection.pair()
        #expect(throws: VhostUserError.self) { try a.send(.request(.setFeatures, size: 8), payload: []) }
        let e = try makeEventFD()
        #expect(throws: VhostUserError.self) {
            try a.send(.request(.getFeatures, size: 0), fds: Array(repeating: e.descriptor, count: 9))
        }
    }

    @Test func sendToClosedPeerFailsWithoutSIGPIPE() throws {
        let a = try Connection.pair().0      // the other end is released at once
        #expect(throws: VhostUserError.system(operation: "sendmsg", errno: EPIPE)) { try a.send(.request(.getFeatures, size: 0)) }
    }
}
