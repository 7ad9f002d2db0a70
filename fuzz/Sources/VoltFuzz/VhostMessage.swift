import IPC

/// Target `vhost_message`: a stream of vhost-user messages (header, payload, fd count)
/// through the front-end message decoder. Invariants: decoding never traps; a decoded
/// payload re-encodes to bytes that decode to an equal value; the header round-trips.
func fuzzVhostMessage(_ data: [UInt8]) {
    var input = FuzzInput(data)
    var messages = 0
    while !input.isEmpty, messages < 32 {
        messages += 1
        let headerBytes = input.take(12)
        guard let header = try? MessageHeader.decode(from: headerBytes) else { continue }
        invariant((try? MessageHeader.decode(from: header.encode())) == header, "header round trip \(header)")
        let payload = input.take(Int(min(header.size, 300)))
        let fdCount = Int(input.u8() % 10)
        guard let message = try? FrontendMessage.decode(header: header, payload: payload, fdCount: fdCount) else { continue }
        invariant((try? FrontendMessage.decode(header: header, payload: payload, fdCount: fdCount)) == message, "decode not deterministic")
        roundTrip(payload)
    }
}

/// Every payload codec: decode, encode, decode again, equal.
private func roundTrip(_ payload: [UInt8]) {
    if let v = try? VringState.decode(from: payload) {
        invariant((try? VringState.decode(from: v.encode())) == v, "VringState round trip")
    }
    if let v = try? VringAddress.decode(from: payload) {
        invariant((try? VringAddress.decode(from: v.encode())) == v, "VringAddress round trip")
    }
    if let v = try? VringFdPayload.decode(from: payload) {
        invariant((try? VringFdPayload.decode(from: v.encode())) == v, "VringFdPayload round trip")
    }
    if let v = try? MemoryTable.decode(from: payload) {
        invariant((try? MemoryTable.decode(from: v.encode())) == v, "MemoryTable round trip")
    }
    if let v = try? DeviceConfig.decode(from: payload) {
        invariant((try? DeviceConfig.decode(from: v.encode())) == v, "DeviceConfig round trip")
    }
    if let v = try? InflightDescription.decode(from: payload) {
        invariant((try? InflightDescription.decode(from: v.encode())) == v, "InflightDescription round trip")
    }
    if let v = try? decodeU64(payload) { invariant((try? decodeU64(encodeU64(v))) == v, "u64 round trip") }
}
