import Testing
import IPC
@testable import BlockWorker

@Suite struct OptionsTests {
    @Test func fullCommandLine() throws {
        let o = try Options.parse(["--socket-path", "/tmp/s", "--path=/img", "--readonly", "--direct",
                                   "--num-queues", "4", "--queue-size=256", "--serial", "disk-1"])
        #expect(o.endpoint == .socketPath("/tmp/s"))
        #expect(o.imagePath == "/img")
        #expect(o.readOnly && o.direct)
        #expect(o.numQueues == 4 && o.queueSize == 256 && o.serial == "disk-1")
    }

    @Test func inheritedFds() throws {
        let o = try Options.parse(["--fd=3", "--image-fd", "4"])
        #expect(o.endpoint == .inheritedFd(3))
        #expect(o.imageFD == 4)
    }

    @Test func specAliases() throws {
        let o = try Options.parse(["--socket-path=/s", "--blk-file", "/img", "--read-only"])
        #expect(o.imagePath == "/img" && o.readOnly)
    }

    @Test func printCapabilitiesNeedsNothingElse() throws {
        #expect(try Options.parse(["--print-capabilities"]).printCapabilities)
        #expect(Options.capabilities == #"{"type": "block", "features": ["read-only", "blk-file"]}"#)
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
        #expect(throws: Options.UsageError.self) { try Options.parse(args) }
    }
}
