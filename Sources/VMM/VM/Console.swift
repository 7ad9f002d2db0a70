import Glibc
import Sandbox
import Synchronization

/// The serial console on the host side: transmit bytes to stdout; stdin bytes to the
/// UART's receive FIFO. A terminal is switched to raw mode (signals kept, so Ctrl-C
/// still stops the VM) and restored on exit.
final class Console: @unchecked Sendable {
    private var savedTerminal: termios?
    private let wroteFirstByte = Atomic<Bool>(false)

    func writeByte(_ byte: UInt8) {
        if !wroteFirstByte.load(ordering: .relaxed), !wroteFirstByte.exchange(true, ordering: .relaxed) {
            StartupTrace.mark("guest: first serial output byte")
        }
        var b = byte
        while write(STDOUT_FILENO, &b, 1) < 0 && errno == EINTR {}
    }

    func enterRawModeIfTerminal() {
        guard isatty(STDIN_FILENO) == 1 else { return }
        var t = termios()
        guard tcgetattr(STDIN_FILENO, &t) == 0 else { return }
        savedTerminal = t
        cfmakeraw(&t)
        t.c_lflag |= tcflag_t(ISIG)
        tcsetattr(STDIN_FILENO, TCSANOW, &t)
    }

    func restoreTerminal() {
        guard var t = savedTerminal else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &t)
        savedTerminal = nil
    }

    /// Forwards stdin to `deliver` until EOF; `deliver` returns how many bytes it took.
    func pumpInput(into deliver: (ArraySlice<UInt8>) -> Int) {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            var pending = buffer[0..<n]
            while !pending.isEmpty {
                let taken = deliver(pending)
                pending = pending.dropFirst(taken)
                if !pending.isEmpty { usleep(1000) }   // guest's FIFO is full; it will drain
            }
        }
    }
}
