import Testing
@testable import VsockWorker

/// The 44-byte header codec and the checks every guest TX packet passes first.
@Suite struct PacketTests {
    static let cid: UInt64 = 3

    static func header(_ op: UInt16, len: UInt32 = 0, src: UInt64 = cid, dst: UInt64 = 2, type: UInt16 = VsockType.stream) -> VsockHeader {
        var h = VsockHeader(srcCID: src, dstCID: dst, srcPort: 1234, dstPort: 5678, op: op, len: len, flags: 0, bufAlloc: 4096, fwdCnt: 0)
        h.type = type
        return h
    }

    @Test func encodesTheSpecLayoutLittleEndian() {
        let h = VsockHeader(srcCID: 0x0102030405060708, dstCID: 2, srcPort: 0xAABBCCDD, dstPort: 7, op: VsockOp.rw, len: 0x10,
                            flags: 3, bufAlloc: 0x40000, fwdCnt: 0x99)
        let b = h.bytes
        #expect(b.count == 44)
        #expect(Array(b[0..<8]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(b[8..<16]) == [2, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(b[16..<20]) == [0xDD, 0xCC, 0xBB, 0xAA])
        #expect(Array(b[24..<28]) == [0x10, 0, 0, 0])
        #expect(Array(b[28..<30]) == [1, 0], "type stream")
        #expect(Array(b[30..<32]) == [5, 0], "op RW")
        #expect(Array(b[32..<36]) == [3, 0, 0, 0])
        #expect(Array(b[36..<40]) == [0, 0, 4, 0])
        #expect(Array(b[40..<44]) == [0x99, 0, 0, 0])
        #expect(b.withUnsafeBytes { VsockHeader($0) } == h)
    }

    @Test func aShortBufferIsNoHeader() {
        let short = [UInt8](repeating: 0, count: 43)
        #expect(short.withUnsafeBytes { VsockHeader($0) } == nil)
    }

    @Test(arguments: [
        // (header, readable bytes in the chain, expected error)
        (header(VsockOp.rw, len: 10), UInt32(44 + 10), nil as VsockPacketError?),
        (header(VsockOp.request), 44, nil),
        (header(VsockOp.rw, len: 11), 44 + 10, .badLength(len: 11, available: 10)),
        (header(VsockOp.rw, len: 65537), 44 + 65537, .badLength(len: 65537, available: 65537)),
        (header(VsockOp.rw, len: 0xFFFF_FFFF), 44, .badLength(len: 0xFFFF_FFFF, available: 0)),
        (header(VsockOp.rw, src: 4), 44, .wrongSourceCID(4, expected: cid)),
        (header(VsockOp.rw, dst: 3), 44, .wrongDestinationCID(3)),
        (header(VsockOp.rw, dst: 0xFFFF_FFFF), 44, .wrongDestinationCID(0xFFFF_FFFF)),
        (header(VsockOp.rw, type: VsockType.seqpacket), 44, .unsupportedType(2)),
        (header(VsockOp.rw, type: 0), 44, .unsupportedType(0)),
        (header(0), 44, .unknownOp(0)),
        (header(8), 44, .unknownOp(8)),
        (header(0xFFFF), 44, .unknownOp(0xFFFF)),
        (header(VsockOp.request, len: 4), 48, .payloadOnControl(op: VsockOp.request, len: 4)),
        (header(VsockOp.creditUpdate, len: 1), 45, .payloadOnControl(op: VsockOp.creditUpdate, len: 1)),
        (header(VsockOp.rw), 40, .shortHeader(readable: 40)),
    ])
    func validation(_ h: VsockHeader, readable: UInt32, expected: VsockPacketError?) {
        do {
            try h.validate(readable: readable, guestCID: Self.cid)
            #expect(expected == nil, "accepted, expected \(String(describing: expected))")
        } catch {
            #expect(error == expected)
        }
    }
}

/// Firecracker's `CONNECT <port>\n` line.
@Suite struct ConnectLineTests {
    @Test(arguments: [
        ("CONNECT 52\n", ConnectLine.Parse.port(52)),
        ("CONNECT 0\n", .port(0)),
        ("CONNECT 4294967295\n", .port(4_294_967_295)),
        ("CONNECT 52", .needMore),
        ("CONN", .needMore),
        ("", .needMore),
        ("CONNECT 4294967296\n", .invalid("the port is not a decimal number up to 4294967295")),
        ("CONNECT -1\n", .invalid("the port is not a decimal number up to 4294967295")),
        ("CONNECT +1\n", .invalid("the port is not a decimal number up to 4294967295")),
        ("CONNECT 1 \n", .invalid("the port is not a decimal number up to 4294967295")),
        ("CONNECT 00000000001\n", .invalid("the port is not a decimal number up to 4294967295")),
        ("CONNECT \n", .invalid("no port after 'CONNECT '")),
        ("connect 52\n", .invalid("the line does not start with 'CONNECT '")),
        ("GET / HTTP/1.1\r\n", .invalid("the line does not start with 'CONNECT '")),
        ("X", .invalid("the line does not start with 'CONNECT '")),
        ("CONNECT 1111111111111111111111111", .invalid("no newline within 32 bytes")),
    ])
    func parse(_ text: String, expected: ConnectLine.Parse) {
        #expect(ConnectLine.parse(Array(text.utf8)) == expected, "\(text.debugDescription)")
    }

    @Test func hostPortsComeFromTheFirecrackerRangeAndSkipPortsInUse() {
        var a = HostPortAllocator()
        let first = a.allocate(inUse: { _ in false })
        let second = a.allocate(inUse: { $0 == (1 << 30) + 1 })
        let none = a.allocate(inUse: { _ in true })
        #expect(first == Optional(UInt32(1_073_741_824)))
        #expect(second == Optional(UInt32(1_073_741_826)))
        #expect(none == nil)
    }
}
