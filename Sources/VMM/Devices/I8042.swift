/// Just enough of the i8042 keyboard controller for a guest to reset the machine:
/// Linux's `reboot=k` waits for the input buffer to drain (status bit 1 clear) and
/// writes the pulse-reset command 0xFE to the command port.
final class I8042: PortIODevice {
    static let resetCommand: UInt8 = 0xfe
    private let onReset: @Sendable () -> Void

    init(onReset: @escaping @Sendable () -> Void) {
        self.onReset = onReset
    }

    func read(offset: UInt16, into data: UnsafeMutableRawBufferPointer) {
        // Data port: no keyboard data. Status port: output and input buffers empty.
        for i in data.indices { data[i] = 0 }
    }

    func write(offset: UInt16, data: UnsafeRawBufferPointer) {
        // Offset 4 is port 0x64 when mapped at 0x60 with a 5-port window.
        if offset == 4, data.first == I8042.resetCommand { onReset() }
    }
}
