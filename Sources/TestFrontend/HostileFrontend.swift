import CShim
import Glibc
import IPC
import SystemPackage
import VirtioCore

/// A hostile front-end and guest for robustness tests of a vhost-user back-end (seeded,
/// so a failure replays): random vhost-user messages — right or wrong sizes, plausible or
/// absurd fields, fds or none — and, after a proper start, random descriptor chains kicked
/// at a queue. The back-end may refuse and hang up; the caller checks how it ended.
public enum HostileFrontend {
    public struct MessageMaker {
        public var random: SplitMix
        /// fds the messages carry (memfds, eventfds), until `closeAll`.
        var opened: [Int32] = []

        public init(seed: UInt64) { random = SplitMix(state: seed) }

        public mutating func below(_ n: UInt64) -> UInt64 { random.next() % n }
        public mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        mutating func small() -> UInt32 { chance(80) ? UInt32(below(4)) : UInt32(truncatingIfNeeded: random.next()) }

        mutating func memfd(size: Int) -> Int32 {
            let fd = volt_memfd_create("hostile", VOLT_MFD_CLOEXEC)
            if fd >= 0 { _ = ftruncate(fd, off_t(size)) ; opened.append(fd) }
            return fd
        }

        mutating func eventfd() -> Int32 {
            let fd = volt_eventfd(0, VOLT_EFD_CLOEXEC)
            if fd >= 0 { opened.append(fd) }
            return fd
        }

        /// One request: its code, flags, payload and fds, each plausible or not.
        public mutating func message() -> (header: MessageHeader, payload: [UInt8], fds: [Int32]) {
            let request: UInt32 = chance(95) ? Request.allCases[Int(below(UInt64(Request.allCases.count)))].rawValue
                                             : UInt32(truncatingIfNeeded: random.next())
            var payload: [UInt8]
            var fds: [Int32] = []
            switch Request(rawValue: request) {
            case .setFeatures?, .setProtocolFeatures?:
                payload = encodeU64(chance(50) ? VirtioFeature.version1 | VirtioFeature.protocolFeatures | VirtioFeature.indirectDescriptors
                                                 : random.next())
            case .setMemTable?:
                let count = Int(below(10))
                let regions = (0..<count).map { _ in
                    MemoryRegion(guestAddress: chance(70) ? below(4) << 20 : random.next(),
                                 size: chance(70) ? (1 + below(4)) << 20 : random.next(),
                                 userAddress: chance(70) ? 0x7f00_0000_0000 + (below(8) << 20) : random.next(),
                                 mmapOffset: chance(80) ? 0 : random.next())
                }
                payload = MemoryTable(regions: regions).encode()
                let fdCount = chance(80) ? count : Int(below(10))
                fds = (0..<fdCount).map { _ in memfd(size: Int(below(4) + 1) << 20) }
            case .setVringNum?, .setVringBase?, .getVringBase?, .setVringEnable?:
                payload = VringState(index: small(), num: chance(70) ? UInt32(1) << below(16) : UInt32(truncatingIfNeeded: random.next())).encode()
            case .setVringAddr?:
                let base = chance(70) ? 0x7f00_0000_0000 + below(4 << 20) : random.next()
                payload = VringAddress(index: small(), flags: chance(80) ? 0 : UInt32(below(4)), descriptorTable: base,
                                       usedRing: base &+ below(0x10000), availableRing: base &+ below(0x10000)).encode()
            case .setVringKick?, .setVringCall?, .setVringErr?:
                let noFd = chance(20)
                payload = VringFdPayload(index: UInt8(truncatingIfNeeded: small()), noFd: noFd).encode()
                if !noFd || chance(10) { fds = [eventfd()] }
            case .getConfig?, .setConfig?:
                let size = chance(80) ? UInt32(below(64)) : UInt32(truncatingIfNeeded: random.next())
                payload = DeviceConfig(offset: chance(80) ? UInt32(below(64)) : UInt32(truncatingIfNeeded: random.next()),
                                       size: size, flags: UInt32(below(2)), data: bytes(Int(min(size, 256)))).encode()
            case .getInflightFd?, .setInflightFd?:
                payload = InflightDescription(mmapSize: chance(50) ? below(1 << 20) : random.next(), mmapOffset: chance(80) ? 0 : random.next(),
                                              numQueues: UInt16(below(4)), queueSize: UInt16(1) << UInt16(below(16))).encode()
                if chance(80) { fds = [memfd(size: Int(below(64) + 1) << 12)] }
            default:
                payload = chance(70) ? [] : bytes(Int(below(64)))
            }
            // Now and then a wrong size, stray bytes or a stray fd.
            if chance(5) { payload = bytes(Int(below(300))) }
            if chance(3) { fds.append(eventfd()) }
            var header = MessageHeader(request: request, flags: chance(95) ? VhostUser.version | (chance(50) ? MessageHeader.needReplyFlag : 0)
                                                                  : UInt32(truncatingIfNeeded: random.next()),
                                       size: UInt32(payload.count))
            if chance(2) { header = MessageHeader(request: request, flags: header.flags, size: UInt32(truncatingIfNeeded: random.next())) }
            return (header, payload, fds)
        }

        public mutating func closeAll() { for fd in opened { close(fd) }; opened = [] }
    }

    /// Sends random messages until the worker hangs up or `count` are sent.
    public static func protocolChaos(_ connection: Connection, _ maker: inout MessageMaker, count: Int) {
        // A request the worker rightly never answers ends the wait, not the test.
        connection.setReceiveTimeout(milliseconds: 2000)
        for _ in 0..<count {
            let (header, payload, fds) = maker.message()
            do {
                try connection.send(header, payload: payload, fds: fds.map { FileDescriptor(rawValue: $0) })
            } catch { return }   // the worker hung up: what a refused front-end sees
            maker.closeAll()
            let expectsReply = header.needsReply || (Request(rawValue: header.request)?.hasInherentReply ?? false)
            if expectsReply {
                do { _ = try connection.receive() } catch { return }
            }
        }
    }

    /// A proper start, then chains of random descriptors (addresses in and out of memory,
    /// any lengths and flags, loops) offered and kicked on `queue`, with a few random
    /// messages after. Returns how many chains the worker gave back.
    public static func guestChaos(_ socket: String, _ maker: inout MessageMaker, queueCount: Int = 1, queue: Int = 0,
                                  usedTimeout: Double = 1) throws -> Int {
        let options = TestFrontendOptions(memorySize: 4 << 20, queueCount: queueCount, queueSize: 64)
        let frontend = try VhostUserTestFrontend(socketPath: socket, options: options)
        try frontend.start()
        let slots = try frontend.reserveDescriptors(queue: queue, count: 32)
        var returned = 0
        for _ in 0..<8 {
            for slot in slots {
                let address = maker.chance(80) ? maker.below(options.memorySize) : maker.random.next()
                let length = maker.chance(80) ? UInt32(maker.below(8192)) : UInt32(truncatingIfNeeded: maker.random.next())
                let flags = DescriptorFlags(rawValue: maker.chance(90) ? UInt16(maker.below(8)) : UInt16(truncatingIfNeeded: maker.random.next()))
                let next = maker.chance(80) ? slots[Int(maker.below(UInt64(slots.count)))] : UInt16(truncatingIfNeeded: maker.random.next())
                try frontend.writeRawDescriptor(queue: queue, slot: slot, address: GuestAddress(address), length: length,
                                                flags: flags, next: next)
            }
            // Distinct heads (each is in flight once); their chains may share descriptors.
            let heads = Array(slots.shuffled(using: &maker.random).prefix(Int(maker.below(8) + 1)))
            try frontend.offerRaw(queue: queue, heads: heads)
            try frontend.kick(queue: queue)
            // The worker may have written status bytes over the rings: a failed wait is fine.
            var used: [UsedElement] = []
            returned += (try? frontend.waitForUsedRaw(queue: queue, count: heads.count, into: &used, timeout: usedTimeout)) ?? 0
        }
        protocolChaos(frontend.connection, &maker, count: 10)
        frontend.disconnect()
        return returned
    }

    /// A proper start (features, memory table, a running queue), then random messages.
    public static func chaosAfterStart(_ socket: String, _ maker: inout MessageMaker, queueCount: Int = 1) throws {
        let options = TestFrontendOptions(memorySize: 4 << 20, queueCount: queueCount, queueSize: 64)
        let frontend = try VhostUserTestFrontend(socketPath: socket, options: options)
        try frontend.start()
        protocolChaos(frontend.connection, &maker, count: 40)
        frontend.disconnect()
    }
}

extension HostileFrontend {
    /// Connects to `socket` and sends random messages on it from scratch.
    public static func protocolChaos(_ socket: String, _ maker: inout MessageMaker, count: Int = 40) throws {
        let connection = try Connection.connect(path: socket)
        protocolChaos(connection, &maker, count: count)
        connection.shutdown()
    }
}

extension Connection {
    /// Bounds each later `receive`: past it, the receive fails (EAGAIN) instead of waiting on.
    public func setReceiveTimeout(milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}
