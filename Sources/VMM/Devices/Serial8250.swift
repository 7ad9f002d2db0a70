import Synchronization

/// A 16550A-compatible UART (the 8250 family Linux's serial8250 driver expects):
/// transmit goes straight to an output sink, so THR is always empty again at once;
/// receive bytes queue in a FIFO fed by the console input thread. Interrupts (RX data
/// and THR empty) are raised as edges on the device's ISA IRQ.
final class Serial8250: PortIODevice {
    // Register offsets from the base port.
    static let rbrThr: UInt16 = 0, ier: UInt16 = 1, iirFcr: UInt16 = 2, lcr: UInt16 = 3
    static let mcr: UInt16 = 4, lsr: UInt16 = 5, msr: UInt16 = 6, scr: UInt16 = 7

    // Bits.
    static let ierRxData: UInt8 = 0x01, ierThrEmpty: UInt8 = 0x02
    static let iirNoInterrupt: UInt8 = 0x01, iirThrEmpty: UInt8 = 0x02, iirRxData: UInt8 = 0x04
    static let iirFifoEnabled: UInt8 = 0xc0
    static let lcrDLAB: UInt8 = 0x80
    static let lsrDataReady: UInt8 = 0x01, lsrOverrun: UInt8 = 0x02, lsrThrEmpty: UInt8 = 0x20, lsrIdle: UInt8 = 0x40
    static let mcrLoop: UInt8 = 0x10
    static let msrDCD: UInt8 = 0x80, msrDSR: UInt8 = 0x20, msrCTS: UInt8 = 0x10
    static let fifoCapacity = 64

    struct Registers: Codable, Equatable {
        var ier: UInt8 = 0
        var lcr: UInt8 = 0x03           // 8N1
        var mcr: UInt8 = 0x08           // OUT2
        var scr: UInt8 = 0
        var fcr: UInt8 = 0
        var divisorLow: UInt8 = 0x0c    // 9600 baud
        var divisorHigh: UInt8 = 0
        var thrInterruptPending = false
        var overrun = false
        var rx: [UInt8] = []
    }

    private let state = Mutex(Registers())
    private let output: @Sendable (UInt8) -> Void
    private let raiseInterrupt: @Sendable () -> Void

    /// `output` receives every transmitted byte; `raiseInterrupt` pulses the IRQ line.
    init(output: @escaping @Sendable (UInt8) -> Void, raiseInterrupt: @escaping @Sendable () -> Void) {
        self.output = output
        self.raiseInterrupt = raiseInterrupt
    }

    /// The registers and receive FIFO, for a snapshot.
    func snapshot() -> Registers { state.withLock { $0 } }

    /// Restores a snapshot's registers; a FIFO over capacity is refused.
    func restore(_ registers: Registers) throws(SnapshotError) {
        guard registers.rx.count <= Self.fifoCapacity else {
            throw .invalid("serial: \(registers.rx.count) bytes in a \(Self.fifoCapacity)-byte receive FIFO")
        }
        state.withLock { $0 = registers }
    }

    /// Bytes from the console. Returns how many were accepted; the rest must be retried
    /// (the FIFO is full because the guest is not reading).
    @discardableResult
    func enqueueInput(_ bytes: some Collection<UInt8>) -> Int {
        let (accepted, interrupt) = state.withLock { r -> (Int, Bool) in
            let room = max(0, Serial8250.fifoCapacity - r.rx.count)
            let taken = Array(bytes.prefix(room))
            let wasEmpty = r.rx.isEmpty
            r.rx.append(contentsOf: taken)
            return (taken.count, wasEmpty && !taken.isEmpty && r.ier & Serial8250.ierRxData != 0)
        }
        if interrupt { raiseInterrupt() }
        return accepted
    }

    func read(offset: UInt16, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        let value = state.withLock { r -> UInt8 in Serial8250.readRegister(offset, &r) }
        data[0] = value
        for i in data.indices.dropFirst() { data[i] = 0 }
    }

    func write(offset: UInt16, data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        let (transmit, interrupt) = state.withLock { r in Serial8250.writeRegister(offset, value, &r) }
        if let byte = transmit { output(byte) }
        if interrupt { raiseInterrupt() }
    }

    /// Register read semantics; pure so it can be unit-tested through the device.
    private static func readRegister(_ offset: UInt16, _ r: inout Registers) -> UInt8 {
        let dlab = r.lcr & lcrDLAB != 0
        switch offset {
        case rbrThr:
            if dlab { return r.divisorLow }
            guard !r.rx.isEmpty else { return 0 }
            return r.rx.removeFirst()
        case ier:
            return dlab ? r.divisorHigh : r.ier
        case iirFcr:
            let fifo: UInt8 = r.fcr & 0x01 != 0 ? iirFifoEnabled : 0
            if r.ier & ierRxData != 0 && !r.rx.isEmpty { return fifo | iirRxData }
            if r.ier & ierThrEmpty != 0 && r.thrInterruptPending {
                r.thrInterruptPending = false   // reading IIR acknowledges THRE
                return fifo | iirThrEmpty
            }
            return fifo | iirNoInterrupt
        case lcr: return r.lcr
        case mcr: return r.mcr
        case lsr:
            var v = lsrThrEmpty | lsrIdle
            if !r.rx.isEmpty { v |= lsrDataReady }
            if r.overrun { v |= lsrOverrun; r.overrun = false }
            return v
        case msr:
            if r.mcr & mcrLoop != 0 {
                // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let m = r.mcr
                return (m & 0x01 != 0 ? msrDSR : 0) | (m & 0x02 != 0 ? msrCTS : 0)
                    | (m & 0x04 != 0 ? 0x40 : 0) | (m & 0x08 != 0 ? msrDCD : 0)
            }
            return msrDCD | msrDSR | msrCTS
        case scr: return r.scr
        default: return 0xff
        }
    }

    /// Returns the byte to transmit (if any) and whether an interrupt edge is due.
    private static func writeRegister(_ offset: UInt16, _ value: UInt8, _ r: inout Registers) -> (UInt8?, Bool) {
        let dlab = r.lcr & lcrDLAB != 0
        switch offset {
        case rbrThr:
            if dlab { r.divisorLow = value; return (nil, false) }
            if r.mcr & mcrLoop != 0 {
                // Loopback: the byte comes back as received data.
                if r.rx.count < fifoCapacity { r.rx.append(value) } else { r.overrun = true }
                r.thrInterruptPending = true
                return (nil, r.ier & (ierRxData | ierThrEmpty) != 0)
            }
            // Transmitted at once, so THR is empty again: THRE interrupt if enabled.
            r.thrInterruptPending = true
            return (value, r.ier & ierThrEmpty != 0)
        case ier:
            if dlab { r.divisorHigh = value; return (nil, false) }
            let enablingThre = value & ierThrEmpty != 0 && r.ier & ierThrEmpty == 0
            r.ier = value & 0x0f
            // A 16550 raises THRE as soon as it is enabled while THR is empty (Linux relies on it).
            if enablingThre { r.thrInterruptPending = true }
            let rxPending = r.ier & ierRxData != 0 && !r.rx.isEmpty
            return (nil, enablingThre || rxPending)
        case iirFcr:
            r.fcr = value
            if value & 0x02 != 0 { r.rx.removeAll() }   // clear RX FIFO
            return (nil, false)
        case lcr: r.lcr = value
        case mcr: r.mcr = value & 0x1f
        case scr: r.scr = value
        default: break                                   // LSR/MSR are read-only
        }
        return (nil, false)
    }
}
