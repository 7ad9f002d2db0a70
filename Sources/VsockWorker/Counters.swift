import WorkerCore

/// volt-vsock-worker's counters (after the framework's kicks, interrupts,
/// errors_broken_ring, resubmitted and faults_injected).
enum VsockCounter: Int, DeviceCounter {
    /// Packets taken from the TX queue / written into RX buffers.
    case packetsFromGuest, packetsToGuest
    /// Payload bytes written to host sockets / read from them into guest buffers.
    case bytesToHost, bytesToGuest
    case connectionsOpened, connectionsClosed, connectionsReset
    /// Guest packets refused: no header, bad length, wrong CID, type or op.
    case errorsMalformedPacket
    /// Guest packets that lied about credit (fwd_cnt ahead, or more data than credit).
    case errorsCredit
    /// Guest packets for a connection that does not exist (answered with RST).
    case errorsUnknownConnection
    /// Guest connections to `<uds_path>_P` that failed (nothing listening): RST.
    case errorsHostConnect
    /// Host peers closed: garbage or no CONNECT line in time, too many, no port left.
    case hostRejected
    case errorsHostAccept
    /// RSTs dropped because too many waited for RX buffers.
    case resetsDropped
    case transportResets
}

/// One turn's counts, moved into the thread's counters at its end.
struct VsockStats {
    var packetsFromGuest: UInt64 = 0, packetsToGuest: UInt64 = 0
    var bytesToHost: UInt64 = 0, bytesToGuest: UInt64 = 0
    var connectionsOpened: UInt64 = 0, connectionsClosed: UInt64 = 0, connectionsReset: UInt64 = 0
    var malformedPackets: UInt64 = 0, creditViolations: UInt64 = 0, unknownConnection: UInt64 = 0
    var hostConnectFailures: UInt64 = 0, hostRejected: UInt64 = 0, hostAcceptErrors: UInt64 = 0
    var resetsDropped: UInt64 = 0, transportResets: UInt64 = 0

    mutating func move(into c: inout Counters) {
        let pairs: [(VsockCounter, UInt64)] = [
            (.packetsFromGuest, packetsFromGuest), (.packetsToGuest, packetsToGuest), (.bytesToHost, bytesToHost),
            (.bytesToGuest, bytesToGuest), (.connectionsOpened, connectionsOpened), (.connectionsClosed, connectionsClosed),
            (.connectionsReset, connectionsReset), (.errorsMalformedPacket, malformedPackets), (.errorsCredit, creditViolations),
            (.errorsUnknownConnection, unknownConnection), (.errorsHostConnect, hostConnectFailures),
            (.hostRejected, hostRejected), (.errorsHostAccept, hostAcceptErrors), (.resetsDropped, resetsDropped),
            (.transportResets, transportResets),
        ]
        for (counter, n) in pairs where n > 0 { c.add(counter, n) }
        self = VsockStats()
    }
}
