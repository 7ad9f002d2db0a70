import Synchronization
import Testing
@testable import VMM

@Suite struct Serial8250Tests {
    final class Probe: Sendable {
        let output = Mutex<[UInt8]>([])
        let interrupts = Mutex(0)
    }

    func make() -> (Serial8250, Probe) {
        let probe = Probe()
        let uart = Serial8250(output: { b in probe.output.withLock { $0.append(b) } },
                              raiseInterrupt: { probe.interrupts.withLock { $0 += 1 } })
        return (uart, probe)
    }

    func read(_ uart: Serial8250, _ offset: UInt16) -> UInt8 {
        var v: UInt8 = 0
        withUnsafeMutableBytes(of: &v) { uart.read(offset: offset, into: $0) }
        return v
    }

    func write(_ uart: Serial8250, _ offset: UInt16, _ value: UInt8) {
        withUnsafeBytes(of: value) { uart.write(offset: offset, data: $0) }
    }

    @Test func transmitGoesToOutputAndTHRStaysEmpty() {
        let (uart, probe) = make()
        write(uart, Serial8250.rbrThr, 0x41)
        #expect(probe.output.withLock { $0 } == [0x41])
        #expect(read(uart, Serial8250.lsr) & Serial8250.lsrThrEmpty != 0)
        #expect(probe.interrupts.withLock { $0 } == 0, "no THRE interrupt unless enabled")
    }

    @Test func enablingTHREInterruptRaisesItAndIIRReportsIt() {
        let (uart, probe) = make()
        write(uart, Serial8250.ier, Serial8250.ierThrEmpty)
        #expect(probe.interrupts.withLock { $0 } == 1)
        #expect(read(uart, Serial8250.iirFcr) & 0x0f == Serial8250.iirThrEmpty)
        #expect(read(uart, Serial8250.iirFcr) & 0x0f == Serial8250.iirNoInterrupt, "reading IIR acknowledges THRE")
        write(uart, Serial8250.rbrThr, 0x42)
        #expect(probe.interrupts.withLock { $0 } == 2)
        #expect(read(uart, Serial8250.iirFcr) & 0x0f == Serial8250.iirThrEmpty)
    }

    @Test func receivedDataRaisesInterruptAndIsReadInOrder() {
        let (uart, probe) = make()
        write(uart, Serial8250.ier, Serial8250.ierRxData)
        #expect(uart.enqueueInput([0x61, 0x62]) == 2)
        #expect(probe.interrupts.withLock { $0 } == 1)
        #expect(read(uart, Serial8250.iirFcr) & 0x0f == Serial8250.iirRxData)
        #expect(read(uart, Serial8250.lsr) & Serial8250.lsrDataReady != 0)
        #expect(read(uart, Serial8250.rbrThr) == 0x61)
        #expect(read(uart, Serial8250.rbrThr) == 0x62)
        #expect(read(uart, Serial8250.lsr) & Serial8250.lsrDataReady == 0)
        #expect(read(uart, Serial8250.iirFcr) & 0x0f == Serial8250.iirNoInterrupt)
    }

    @Test func receiveFIFOIsBounded() {
        let (uart, _) = make()
        let many = [UInt8](repeating: 0x7a, count: 100)
        #expect(uart.enqueueInput(many) == Serial8250.fifoCapacity)
        #expect(uart.enqueueInput([1]) == 0)
    }

    @Test func divisorLatchAndScratchAndLineControl() {
        let (uart, probe) = make()
        write(uart, Serial8250.lcr, 0x83)
        write(uart, Serial8250.rbrThr, 0x01)
        write(uart, Serial8250.ier, 0x00)
        #expect(read(uart, Serial8250.rbrThr) == 0x01)
        #expect(read(uart, Serial8250.ier) == 0x00)
        #expect(probe.output.withLock { $0 }.isEmpty, "DLAB writes are not transmitted")
        write(uart, Serial8250.lcr, 0x03)
        #expect(read(uart, Serial8250.lcr) == 0x03)
        write(uart, Serial8250.scr, 0x5a)
        #expect(read(uart, Serial8250.scr) == 0x5a)
    }

    @Test func fifoEnabledShowsInIIRLikeA16550A() {
        let (uart, _) = make()
        write(uart, Serial8250.iirFcr, 0x07)
        #expect(read(uart, Serial8250.iirFcr) & 0xc0 == 0xc0)
    }

    @Test func loopbackReflectsModemControlAndData() {
        let (uart, probe) = make()
        write(uart, Serial8250.mcr, Serial8250.mcrLoop | 0x0f)
        #expect(read(uart, Serial8250.msr) & 0xf0 == 0xf0)
        write(uart, Serial8250.rbrThr, 0x55)
        #expect(read(uart, Serial8250.rbrThr) == 0x55)
        #expect(probe.output.withLock { $0 }.isEmpty, "loopback does not transmit")
    }
}

@Suite struct LegacyDeviceTests {
    @Test func i8042ResetsOnlyOnPulseCommand() {
        let resets = Mutex(0)
        let kbc = I8042 { resets.withLock { $0 += 1 } }
        withUnsafeBytes(of: UInt8(0xd1)) { kbc.write(offset: 4, data: $0) }
        withUnsafeBytes(of: UInt8(0xfe)) { kbc.write(offset: 0, data: $0) }
        #expect(resets.withLock { $0 } == 0)
        var status: UInt8 = 0xff
        withUnsafeMutableBytes(of: &status) { kbc.read(offset: 4, into: $0) }
        #expect(status & 0x02 == 0, "input buffer empty so reboot=k proceeds")
        withUnsafeBytes(of: UInt8(0xfe)) { kbc.write(offset: 4, data: $0) }
        #expect(resets.withLock { $0 } == 1)
    }

    @Test func portBusRoutesAndRejectsOverlap() throws {
        let bus = PortIOBus()
        let kbc = I8042 {}
        try bus.insert(kbc, base: 0x60, count: 5)
        #expect(throws: PortIOBusError.self) { try bus.insert(I8042 {}, base: 0x64, count: 1) }
        var v: UInt8 = 0
        withUnsafeMutableBytes(of: &v) { bus.read(port: 0x70, into: $0) }
        #expect(v == 0xff, "unclaimed ports float high")
    }

    @Test func millisecondsFormatting() {
        #expect(formatMilliseconds(12.3454) == "12.345")
        #expect(formatMilliseconds(0.0005) == "0.001")
        #expect(formatMilliseconds(7) == "7.000")
    }
}
