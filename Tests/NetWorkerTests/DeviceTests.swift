import CShim
import IPC
@testable import NetWorker
import Testing

struct OptionsTests {
    @Test(arguments: [
        (["--socket-path", "/tmp/s", "--tap", "t0"], true),
        (["--fd=3", "--tap=t0", "--mac", "52:54:00:12:34:56", "--mtu", "9000"], true),
        (["--socket-path", "/tmp/s", "--tap-fd", "5", "--tap-fd", "6"], true),
        (["--print-capabilities"], true),
        (["--socket-path", "/tmp/s"], false),
        (["--tap", "t0"], false),
        (["--socket-path", "/tmp/s", "--fd", "3", "--tap", "t0"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--tap-fd", "3"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--mac", "01:00:00:00:00:01"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--mac", "52:54:00:12:34"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--queue-size", "100"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--num-queue-pairs", "0"], false),
        (["--socket-path", "/tmp/s", "--tap", "a-name-longer-than-15"], false),
        (["--socket-path", "/tmp/s", "--tap-fd", "5", "--num-queue-pairs", "2"], false),
        (["--socket-path", "/tmp/s", "--tap", "t0", "--bogus"], false),
    ])
    func parse(args: [String], valid: Bool) {
        let result = Result { () throws(UsageError) in try Options.parse(args) }
        switch result {
        case .success: #expect(valid, "\(args) should be refused")
        case let .failure(error):
            #expect(!valid, "\(args): \(error)")
            #expect(error.description.contains("fix:"), "every usage error says how to fix it")
        }
    }

    @Test func tapFdsSetThePairCount() throws {
        let o = try Options.parse(["--fd", "3", "--tap-fd", "5", "--tap-fd", "6", "--tap-fd", "7"])
        #expect(o.device.pairs == 3)
        #expect(o.device.taps == .fds([5, 6, 7]))
    }
}
