import Synchronization

/// An i8042 keyboard controller with a PS/2 keyboard behind it and no aux (mouse) device:
/// enough for Linux's i8042 and atkbd drivers, `reboot=k`, and for the host to type
/// Ctrl+Alt+Del. Modelled on what Firecracker's device does
/// (firecracker-microvm/firecracker:src/vmm/src/devices/legacy/i8042.rs); our own code.
///
/// * Port 0x60 (offset 0): reads pop the output buffer; writes go to the keyboard, or to
///   the controller when a command (0x60, 0xD4) waits for its data byte.
/// * Port 0x64 (offset 4): reads give the status register; writes are controller commands.
///
/// The keyboard speaks scan code set 2, as a real one does after reset. While the command
/// byte's translate bit is set the controller turns it into set 1, so what the guest reads
/// follows that bit (see `ctrlAltDel`).
final class I8042: PortIODevice {
    // Offsets from port 0x60.
    static let dataOffset: UInt16 = 0, commandOffset: UInt16 = 4

    // Controller commands (port 0x64).
    static let readCommandByte: UInt8 = 0x20, writeCommandByte: UInt8 = 0x60
    static let disableAux: UInt8 = 0xa7, enableAux: UInt8 = 0xa8
    static let selfTest: UInt8 = 0xaa, keyboardInterfaceTest: UInt8 = 0xab
    static let disableKeyboard: UInt8 = 0xad, enableKeyboard: UInt8 = 0xae
    static let writeAux: UInt8 = 0xd4
    static let resetCommand: UInt8 = 0xfe   // pulse the reset line

    // Status register bits.
    static let statusOutputFull: UInt8 = 0x01
    static let statusSystemFlag: UInt8 = 0x04
    static let statusLastWriteWasCommand: UInt8 = 0x08
    static let statusKeyboardUnlocked: UInt8 = 0x10   // Linux warns "Keylock active" without it

    // Command byte bits.
    static let keyboardInterrupt: UInt8 = 0x01
    static let systemFlag: UInt8 = 0x04
    static let keyboardDisabled: UInt8 = 0x10
    static let auxDisabled: UInt8 = 0x20
    static let translate: UInt8 = 0x40
    /// What a PC BIOS leaves behind (there is no firmware here, the VMM plays it): keyboard
    /// interrupt on, POST passed, translation to set 1 on. Firecracker starts at 0x05,
    /// translation off, so Linux drives its keyboard untranslated (set 2).
    static let initialCommandByte: UInt8 = keyboardInterrupt | systemFlag | translate

    // Replies.
    static let selfTestPassed: UInt8 = 0x55, interfaceTestPassed: UInt8 = 0x00
    static let ack: UInt8 = 0xfa, keyboardSelfTestPassed: UInt8 = 0xaa

    // Keyboard commands (port 0x60) that need their own reply.
    static let keyboardReset: UInt8 = 0xff, keyboardIdentify: UInt8 = 0xf2, keyboardEcho: UInt8 = 0xee
    /// Set LEDs, select scan code set, set typematic rate: each is followed by a parameter byte.
    static let keyboardCommandsWithParameter: Set<UInt8> = [0xed, 0xf0, 0xf3]

    /// Bytes the guest has not read yet. Linux's i8042_flush gives up on a controller that
    /// still has data after 16 reads, so never hold more; beyond it bytes are dropped,
    /// which also keeps a guest that never reads from growing it.
    static let outputCapacity = 16

    /// Left Ctrl, left Alt and Delete pressed, then released in reverse order (as QEMU's
    /// `sendkey ctrl-alt-delete` does, so the guest's view of the keys ends up clean).
    /// Linux acts on the Delete press. Set 1 is what the guest reads while the controller
    /// translates; set 2 when it does not (Firecracker's case: it injects the set 2
    /// presses 14 11 E0 71, because its command byte has translation off).
    static func ctrlAltDel(translated: Bool) -> [UInt8] {
        translated
            ? [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]
            : [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14]
    }

    /// Where the next write to port 0x60 goes.
    enum DataTarget: String, Codable {
        case keyboard
        case keyboardParameter   // the byte after 0xED, 0xF0 or 0xF3
        case commandByte         // after controller command 0x60
        case aux                 // after controller command 0xD4
    }

    struct State: Codable, Equatable {
        var commandByte = I8042.initialCommandByte
        var output: [UInt8] = []
        var dataTarget = DataTarget.keyboard
        var lastWriteWasCommand = false

        var translating: Bool { commandByte & I8042.translate != 0 }
        var interruptEnabled: Bool { commandByte & I8042.keyboardInterrupt != 0 }

        /// Appends what fits; returns whether anything landed (an interrupt is due).
        mutating func push(_ bytes: [UInt8]) -> Bool {
            let taken = bytes.prefix(max(0, I8042.outputCapacity - output.count))
            output.append(contentsOf: taken)
            return !taken.isEmpty
        }
    }

    private let state = Mutex(State())
    private let onReset: @Sendable () -> Void
    private let raiseInterrupt: @Sendable () -> Void

    /// `onReset` ends the VM (command 0xFE); `raiseInterrupt` pulses IRQ 1. The default
    /// leaves the interrupt line unconnected (tests that only look at reset).
    init(onReset: @escaping @Sendable () -> Void, raiseInterrupt: @escaping @Sendable () -> Void = {}) {
        self.onReset = onReset
        self.raiseInterrupt = raiseInterrupt
    }

    /// The controller's state, for a snapshot.
    func snapshot() -> State { state.withLock { $0 } }

    /// Restores a snapshot's state; an output buffer over capacity is refused.
    func restore(_ saved: State) throws(SnapshotError) {
        guard saved.output.count <= Self.outputCapacity else {
            throw .invalid("i8042: \(saved.output.count) bytes in a \(Self.outputCapacity)-byte output buffer")
        }
        state.withLock { $0 = saved }
    }

    /// Types Ctrl+Alt+Del on the keyboard. Called from the API thread while vCPU threads
    /// do port I/O. All of the sequence or none of it: a guest that has not read the last
    /// one may leave too little room.
    func sendCtrlAltDel() throws(I8042Error) {
        let interrupt = try state.withLock { s throws(I8042Error) -> Bool in
            let bytes = I8042.ctrlAltDel(translated: s.translating)
            let room = I8042.outputCapacity - s.output.count
            guard room >= bytes.count else { throw .outputBufferFull(free: room, needed: bytes.count) }
            return s.push(bytes) && s.interruptEnabled
        }
        if interrupt { raiseInterrupt() }
    }

    func read(offset: UInt16, into data: UnsafeMutableRawBufferPointer) {
        guard data.count == 1 else {
            for i in data.indices { data[i] = 0xff }   // the ports are byte-wide
            return
        }
        let (value, interrupt) = state.withLock { s -> (UInt8, Bool) in
            switch offset {
            case I8042.dataOffset:
                guard !s.output.isEmpty else { return (0, false) }
                let byte = s.output.removeFirst()
                // One byte per interrupt: Linux reads one and returns, so another edge
                // tells it the next is there.
                return (byte, !s.output.isEmpty && s.interruptEnabled)
            case I8042.commandOffset:
                return (I8042.status(s), false)
            default:
                return (0, false)   // 0x61..0x63: nothing here
            }
        }
        data[0] = value
        if interrupt { raiseInterrupt() }
    }

    func write(offset: UInt16, data: UnsafeRawBufferPointer) {
        guard data.count == 1, let value = data.first else { return }
        if offset == I8042.commandOffset && value == I8042.resetCommand {
            onReset()
            return
        }
        let interrupt = state.withLock { s -> Bool in
            switch offset {
            case I8042.dataOffset:
                s.lastWriteWasCommand = false
                return I8042.writeData(value, &s)
            case I8042.commandOffset:
                s.lastWriteWasCommand = true
                return I8042.writeCommand(value, &s)
            default:
                return false
            }
        }
        if interrupt { raiseInterrupt() }
    }

    private static func status(_ s: State) -> UInt8 {
        // The input buffer (bit 1) is always empty: writes are handled at once.
        var v = statusKeyboardUnlocked | (s.commandByte & systemFlag)
        if !s.output.isEmpty { v |= statusOutputFull }
        if s.lastWriteWasCommand { v |= statusLastWriteWasCommand }
        return v
    }

    /// A controller command; returns whether an interrupt is due.
    private static func writeCommand(_ command: UInt8, _ s: inout State) -> Bool {
        s.dataTarget = .keyboard
        switch command {
        case readCommandByte: return reply(s.commandByte, &s)
        case writeCommandByte: s.dataTarget = .commandByte
        case selfTest: return reply(selfTestPassed, &s)
        case keyboardInterfaceTest: return reply(interfaceTestPassed, &s)
        case disableKeyboard: s.commandByte |= keyboardDisabled
        case enableKeyboard: s.commandByte &= ~keyboardDisabled
        case disableAux: s.commandByte |= auxDisabled
        case enableAux: s.commandByte &= ~auxDisabled
        case writeAux: s.dataTarget = .aux
        default: break   // anything else (0xA9 aux test, 0xD3 aux loopback, ...): no aux, no answer
        }
        return false
    }

    /// The controller's own answer replaces whatever was pending: the driver reads the
    /// next byte as the answer (Linux's i8042_command does), and a stale keyboard byte in
    /// front of it would be taken for it.
    private static func reply(_ byte: UInt8, _ s: inout State) -> Bool {
        s.output.removeAll()
        return s.push([byte]) && s.interruptEnabled
    }

    /// A byte written to port 0x60; returns whether an interrupt is due.
    private static func writeData(_ value: UInt8, _ s: inout State) -> Bool {
        let target = s.dataTarget
        s.dataTarget = .keyboard
        let landed: Bool
        switch target {
        case .commandByte:
            let wasEnabled = s.interruptEnabled
            s.commandByte = value
            // Enabling the interrupt with data waiting raises the line.
            return !wasEnabled && s.interruptEnabled && !s.output.isEmpty
        case .aux:
            // No mouse is there; the write is acknowledged so a driver does not wait.
            landed = s.push([ack])
        case .keyboardParameter:
            landed = s.push([ack])
        case .keyboard:
            landed = keyboardCommand(value, &s)
        }
        return landed && s.interruptEnabled
    }

    /// A command to the keyboard: everything is acknowledged (0xFA); returns whether bytes landed.
    private static func keyboardCommand(_ command: UInt8, _ s: inout State) -> Bool {
        switch command {
        case keyboardReset:
            s.output.removeAll()   // a reset keyboard forgets what it had not sent
            return s.push([ack, keyboardSelfTestPassed])
        case keyboardIdentify:
            // An MF2 keyboard: AB 83, whose 83 the controller translates to 41 (atkbd
            // expects AB 41 behind a translating controller).
            return s.push([ack, 0xab, s.translating ? 0x41 : 0x83])
        case keyboardEcho:
            return s.push([keyboardEcho])
        default:
            if keyboardCommandsWithParameter.contains(command) { s.dataTarget = .keyboardParameter }
            return s.push([ack])
        }
    }
}

enum I8042Error: Error, CustomStringConvertible {
    /// The guest has not read enough of what is pending for a whole key sequence.
    case outputBufferFull(free: Int, needed: Int)

    var description: String {
        switch self {
        case let .outputBufferFull(free, needed):
            return "i8042 output buffer full: \(free) bytes free, the key sequence needs \(needed) (the guest is not reading its keyboard)"
        }
    }
}
