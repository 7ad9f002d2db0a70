import Synchronization
import Testing
@testable import VMM

@Suite struct I8042Tests {
    final class Probe: Sendable {
        let resets = Mutex(0)
        let interrupts = Mutex(0)
        var resetCount: Int { resets.withLock { $0 } }
        var interruptCount: Int { interrupts.withLock { $0 } }
    }

    func make() -> (I8042, Probe) {
        let probe = Probe()
        let kbc = I8042(onReset: { probe.resets.withLock { $0 += 1 } },
                        raiseInterrupt: { probe.interrupts.withLock { $0 += 1 } })
        return (kbc, probe)
    }

    func status(_ kbc: I8042) -> UInt8 {
        var v: UInt8 = 0
        withUnsafeMutableBytes(of: &v) { kbc.read(offset: I8042.commandOffset, into: $0) }
        return v
    }

    func readData(_ kbc: I8042) -> UInt8 {
        var v: UInt8 = 0
        withUnsafeMutableBytes(of: &v) { kbc.read(offset: I8042.dataOffset, into: $0) }
        return v
    }

    func command(_ kbc: I8042, _ value: UInt8) {
        withUnsafeBytes(of: value) { kbc.write(offset: I8042.commandOffset, data: $0) }
    }

    func writeData(_ kbc: I8042, _ value: UInt8) {
        withUnsafeBytes(of: value) { kbc.write(offset: I8042.dataOffset, data: $0) }
    }

    /// Reads while OBF is set (at most `limit` bytes), as a driver's flush does.
    func drain(_ kbc: I8042, limit: Int = 64) -> [UInt8] {
        var bytes: [UInt8] = []
        while status(kbc) & I8042.statusOutputFull != 0 && bytes.count < limit { bytes.append(readData(kbc)) }
        return bytes
    }

    @Test func startsEmptyUnlockedAndTranslating() {
        let (kbc, probe) = make()
        #expect(status(kbc) & I8042.statusOutputFull == 0)
        #expect(status(kbc) & 0x02 == 0, "input buffer empty")
        #expect(status(kbc) & I8042.statusKeyboardUnlocked != 0)
        #expect(readData(kbc) == 0, "an empty output buffer reads 0")
        command(kbc, I8042.readCommandByte)
        #expect(drain(kbc) == [0x45])
        #expect(probe.resetCount == 0)
    }

    struct Exchange: CustomTestStringConvertible, Sendable {
        var name: String
        var commands: [UInt8] = []   // to port 0x64, before `data`
        var data: [UInt8] = []       // to port 0x60
        var reply: [UInt8]
        var testDescription: String { name }
    }

    static let exchanges = [
        Exchange(name: "self-test", commands: [0xaa], reply: [0x55]),
        Exchange(name: "keyboard interface test", commands: [0xab], reply: [0x00]),
        Exchange(name: "keyboard command ACK", data: [0xf4], reply: [0xfa]),
        Exchange(name: "keyboard reset", data: [0xff], reply: [0xfa, 0xaa]),
        Exchange(name: "identify, translated", data: [0xf2], reply: [0xfa, 0xab, 0x41]),
        Exchange(name: "echo", data: [0xee], reply: [0xee]),
        Exchange(name: "set LEDs with its parameter", data: [0xed, 0x07], reply: [0xfa, 0xfa]),
        Exchange(name: "scan set parameter is not a command", data: [0xf0, 0xff], reply: [0xfa, 0xfa]),
        Exchange(name: "aux write is acknowledged", commands: [0xd4], data: [0xf4], reply: [0xfa]),
        Exchange(name: "unknown controller command is ignored", commands: [0xa9], reply: []),
        Exchange(name: "write output port is ignored", commands: [0xd1], reply: []),
    ]

    @Test(arguments: exchanges) func commandAndDataSequences(_ e: Exchange) {
        let (kbc, probe) = make()
        for c in e.commands { command(kbc, c) }
        for d in e.data { writeData(kbc, d) }
        #expect(drain(kbc) == e.reply)
        #expect(status(kbc) & I8042.statusOutputFull == 0, "OBF clears with the last byte")
        #expect(probe.resetCount == 0)
    }

    @Test func identifyUntranslatedGivesTheRawID() {
        let (kbc, _) = make()
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x05)
        writeData(kbc, 0xf2)
        #expect(drain(kbc) == [0xfa, 0xab, 0x83])
    }

    @Test func commandByteRoundTripsAndTakesDisableBits() {
        let (kbc, _) = make()
        command(kbc, I8042.writeCommandByte)
        #expect(status(kbc) & I8042.statusLastWriteWasCommand != 0)
        writeData(kbc, 0x47)
        #expect(status(kbc) & I8042.statusLastWriteWasCommand == 0)
        #expect(status(kbc) & I8042.statusOutputFull == 0, "the command byte write is no keyboard command")
        command(kbc, I8042.readCommandByte)
        #expect(drain(kbc) == [0x47])
        command(kbc, I8042.disableKeyboard)
        command(kbc, I8042.disableAux)
        command(kbc, I8042.readCommandByte)
        #expect(drain(kbc) == [0x47 | 0x10 | 0x20])
        command(kbc, I8042.enableKeyboard)
        command(kbc, I8042.enableAux)
        command(kbc, I8042.readCommandByte)
        #expect(drain(kbc) == [0x47])
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x40)
        #expect(status(kbc) & I8042.statusSystemFlag == 0, "status SYS mirrors the command byte")
    }

    @Test func aControllerReplyReplacesPendingBytes() {
        let (kbc, _) = make()
        writeData(kbc, 0xff)   // FA AA pending
        command(kbc, I8042.readCommandByte)
        #expect(drain(kbc) == [0x45])
    }

    @Test func outputBufferIsBounded() {
        let (kbc, _) = make()
        for _ in 0..<100 { writeData(kbc, 0xf4) }
        let bytes = drain(kbc)
        #expect(bytes.count == I8042.outputCapacity)
        #expect(bytes.allSatisfy { $0 == 0xfa })
    }

    @Test func interruptPerLandingAndPerReadWhileBytesRemain() {
        let (kbc, probe) = make()
        writeData(kbc, 0xff)
        #expect(probe.interruptCount == 1)
        #expect(readData(kbc) == 0xfa)
        #expect(probe.interruptCount == 2, "a byte remains: another edge")
        #expect(readData(kbc) == 0xaa)
        #expect(probe.interruptCount == 2, "empty now: no edge")
        _ = readData(kbc)
        #expect(probe.interruptCount == 2, "reading an empty buffer raises nothing")
    }

    @Test func noInterruptWhileTheCommandByteMasksIt() {
        let (kbc, probe) = make()
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x44)   // keyboard interrupt off
        writeData(kbc, 0xff)
        command(kbc, I8042.selfTest)
        writeData(kbc, 0xf4)
        #expect(probe.interruptCount == 0)
        #expect(status(kbc) & I8042.statusOutputFull != 0, "the bytes are there for polling")
        #expect(readData(kbc) == 0x55)
        #expect(probe.interruptCount == 0)
        // Turning the interrupt on with a byte waiting raises it.
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x45)
        #expect(probe.interruptCount == 1)
        #expect(drain(kbc) == [0xfa])
    }

    @Test func ctrlAltDelIsSetOneWhileTranslating() throws {
        let (kbc, probe) = make()
        try kbc.sendCtrlAltDel()
        #expect(probe.interruptCount == 1)
        #expect(drain(kbc) == [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d])
        #expect(probe.interruptCount == 8, "one edge at landing, one after each read but the last")
    }

    @Test func ctrlAltDelIsSetTwoUntranslated() throws {
        let (kbc, probe) = make()
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x05)   // Firecracker's command byte
        try kbc.sendCtrlAltDel()
        #expect(probe.interruptCount == 1)
        #expect(drain(kbc) == [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14])
    }

    @Test func ctrlAltDelIsAllOrNothing() throws {
        let (kbc, probe) = make()
        try kbc.sendCtrlAltDel()
        try kbc.sendCtrlAltDel()
        #expect(throws: I8042Error.self) { try kbc.sendCtrlAltDel() }
        #expect(probe.interruptCount == 2)
        #expect(drain(kbc).count == 16, "two whole sequences, nothing of the third")
    }

    @Test func ctrlAltDelWithoutInterruptStillQueues() throws {
        let (kbc, probe) = make()
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0x44)
        try kbc.sendCtrlAltDel()
        #expect(probe.interruptCount == 0)
        #expect(drain(kbc).count == 8)
    }

    @Test func resetOnlyOnThePulseCommand() {
        let (kbc, probe) = make()
        writeData(kbc, 0xfe)   // to the keyboard: "resend", not a reset
        command(kbc, I8042.writeCommandByte)
        writeData(kbc, 0xfe)   // the command byte, not a reset
        #expect(probe.resetCount == 0)
        command(kbc, I8042.resetCommand)
        #expect(probe.resetCount == 1)
    }

    @Test func wideAccessesDoNothing() {
        let (kbc, probe) = make()
        writeData(kbc, 0xff)
        var word: UInt16 = 0
        withUnsafeMutableBytes(of: &word) { kbc.read(offset: I8042.dataOffset, into: $0) }
        #expect(word == 0xffff)
        withUnsafeBytes(of: UInt16(0x00fe)) { kbc.write(offset: I8042.commandOffset, data: $0) }
        #expect(probe.resetCount == 0)
        #expect(drain(kbc) == [0xfa, 0xaa], "nothing was popped")
    }

    @Test func concurrentInjectionAndPortIO() async throws {
        let (kbc, _) = make()
        // The API thread types while a vCPU polls; the lock keeps every sequence whole.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for _ in 0..<200 { try? kbc.sendCtrlAltDel() } }
            group.addTask { for _ in 0..<2000 { _ = self.status(kbc); _ = self.readData(kbc) } }
        }
        #expect(drain(kbc).count <= I8042.outputCapacity)
    }
}
