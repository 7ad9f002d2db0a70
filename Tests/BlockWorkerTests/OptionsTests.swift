import Testing
import IPC
@testable import BlockWorker

/// volt-blk-worker's command line.
typealias Options = WorkerArguments<BlockArguments>

@Suite struct OptionsTests {
    @Test func fullCommandLine() throws {
        let o = try Options.parse(["--socket-path", "/tmp/s", "--path=/img", "--readonly", "--direct",
                                   "--num-queues", "4", "--queue-size=256", "--serial", "disk-1"])
        #expect(o.endpoint == .socketPath("/tmp/s"))
        #expect(o.device.image == .path("/img"))
        #expect(o.device.readOnly && o.device.direct)
        #expect(o.device.numQueues == 4 && o.device.queueSize == 256 && o.device.serial == "disk-1")
    }

    @Test func inheritedFds() throws {
        let o = try Options.parse(["--fd=3", "--image-fd", "4"])
        #expect(o.endpoint == .inheritedFd(3))
        #expect(o.device.image == .fd(4))
    }

    @Test func specAliases() throws {
        let o = try Options.parse(["--socket-path=/s", "--blk-file", "/img", "--read-only"])
        #expect(o.device.image == .path("/img") && o.device.readOnly)
    }

    @Test func printCapabilitiesNeedsNothingElse() throws {
        #expect(try Options.parse(["--print-capabilities"]).printCapabilities)
        #expect(BlockWorker.capabilities == #"{"type": "block", "features": ["read-only", "blk-file"]}"#)
    }

    @Test(arguments: [
        [], ["--path", "/img"], ["--socket-path", "/s"], ["--socket-path", "/s", "--fd", "3", "--path", "/i"],
        ["--socket-path", "/s", "--path", "/i", "--image-fd", "3"], ["--socket-path", "/s", "--path"],
        ["--socket-path", "/s", "--path", "/i", "--num-queues", "0"],
        ["--socket-path", "/s", "--path", "/i", "--num-queues", "x"],
        ["--socket-path", "/s", "--path", "/i", "--queue-size", "100"],
        ["--socket-path", "/s", "--path", "/i", "--queue-size", "2048"],
        ["--socket-path", "/s", "--path", "/i", "--serial", "this-serial-is-too-long"],
        ["--socket-path", "/s", "--path", "/i", "--readonly=yes"],
        ["--socket-path", "/s", "--path", "/i", "--bogus"],
        ["--socket-path=", "--path", "/i"],
    ])
    func badArguments(_ args: [String]) {
        #expect(throws: UsageError.self) { try Options.parse(args) }
    }
}
