import Foundation
import Testing
import VoltTestSupport
@testable import VMM

/// Boots guests/ticker.elf under KVM: its TSC clock lines (what a pause must keep even)
/// and its interrupt-driven keyboard on volt-vmm's i8042.
@Suite(.serialized) struct TickerGuestTests {
    func ticker() -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let path = TestEnvironment.guest("ticker") else {
            Issue.record("test guest ticker did not build (make -C guests)")
            return nil
        }
        return path
    }

    /// (tick, tsc_ms) from "VOLT-GUEST ticker: tick=K tsc_ms=M" lines, in order.
    static func ticks(_ stdout: String) -> [(tick: Int, ms: Int)] {
        stdout.split(whereSeparator: \.isNewline).compactMap { line in
            guard line.hasPrefix("VOLT-GUEST ticker: tick=") else { return nil }
            let fields = Dictionary(line.dropFirst("VOLT-GUEST ticker: ".count).split(separator: " ").compactMap { pair in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
            }, uniquingKeysWith: { $1 })
            guard let k = fields["tick"].flatMap({ Int($0) }), let ms = fields["tsc_ms"].flatMap({ Int($0) }) else { return nil }
            return (k, ms)
        }
    }

    @Test func fiveTicksAboutAPeriodApartThenReset() throws {
        guard let guest = ticker() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--cmdline", "ticker.ticks=5"], timeout: 60)
        #expect(r.status == 0, "the guest resets through the i8042 at the end, stderr: \(r.stderr)")
        let ticks = Self.ticks(r.stdout)
        #expect(ticks.map(\.tick) == [1, 2, 3, 4, 5], "stdout: \(r.stdout)")
        #expect(ticks.first?.ms == 0, "tsc_ms counts from the first tick")
        // The machine is busy: only ask for 100 ms ± 50 % between lines.
        for (a, b) in zip(ticks, ticks.dropFirst()) {
            #expect((50...150).contains(b.ms - a.ms), "tick \(a.tick) -> \(b.tick): \(b.ms - a.ms) ms")
        }
        #expect(r.stdout.contains("VOLT-GUEST ticker: done"))
    }

    @Test func keyboardAnswersThroughItsInterrupt() throws {
        guard let guest = ticker() else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", guest, "--cmdline", "ticker.ticks=1 ticker.ms=10"], timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        // Identify from port 0x60, the reply read in the IRQ 1 handler: ACK, then an MF2
        // keyboard's AB 83 as a translating controller gives it (AB 41).
        let line = r.stdout.split(whereSeparator: \.isNewline).first { $0.hasPrefix("VOLT-GUEST ticker: keyboard") } ?? ""
        #expect(line.contains("ctr=0x65"), "interrupt, system flag, translation, aux off: \(line)")
        #expect(line.contains("ack=0xfa id=0xab41 got=3"), "\(line)")
        #expect(!line.contains("irqs=0"), "the bytes came through IRQ 1: \(line)")
    }
}
