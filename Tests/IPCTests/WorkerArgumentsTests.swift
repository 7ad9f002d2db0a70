import Testing
@testable import IPC

/// The typed worker command line: what volt-vmm encodes is what the worker decodes, and
/// the shared options (endpoint, metrics page, faults, sandbox) parse the same for every
/// worker.
struct WorkerArgumentsTests {
    typealias Block = WorkerArguments<BlockArguments>
    typealias Net = WorkerArguments<NetArguments>

    @Test func parsesTheSandboxOptions() throws {
        #expect(try Block.parse(["--fd", "3", "--image-fd", "4", "--seccomp=log"]).sandbox.seccompLogOnly)
        #expect(try Block.parse(["--fd", "3", "--image-fd", "4", "--seccomp", "kill"]).sandbox.seccompLogOnly == false)
        #expect(try Block.parse(["--fd", "3", "--image-fd", "4", "--no-sandbox"]).sandbox.enabled == false)
        #expect(try Block.parse(["--fd", "3", "--image-fd", "4", "--fault-forbidden-syscall"]).sandbox.faultForbiddenSyscall)
        #expect(try Block.parse(["--fd", "3", "--image-fd", "4", "--probe-sandbox"]).sandbox.probe)
        #expect(throws: UsageError.self) { try Block.parse(["--fd", "3", "--image-fd", "4", "--seccomp=trap"]) }
        #expect(throws: UsageError.self) { try Block.parse(["--fd", "3", "--image-fd", "4", "--no-sandbox=1"]) }
        #expect(!SandboxOptions.usage.contains("--probe") && !SandboxOptions.usage.contains("--fault"), "test flags stay hidden")
    }

    @Test func blockRoundTrips() throws {
        var fds = InheritedFDs()
        let image = fds.pass(17), page = fds.pass(18)
        #expect(image == 4 && page == 5 && fds.passed == [17, 18])
        var a = Block(endpoint: .inheritedFd(InheritedFDs.socket), metricsFD: page,
                      faults: [FaultSpec(kind: .eioSectors(8...15), seed: 2), FaultSpec(kind: .delay(ms: 20))],
                      device: BlockArguments(image: .fd(image), readOnly: true, direct: true, numQueues: 4, serial: "disk 1"))
        a.device.queueSize = 256
        let encoded = a.encode()
        #expect(encoded.starts(with: ["--fd", "3", "--image-fd", "4"]))
        #expect(try Block.parse(encoded) == a)
    }

    @Test func netRoundTrips() throws {
        let a = Net(endpoint: .socketPath("/run/s"), metricsFD: 9, faults: [FaultSpec(kind: .drop(percent: 5), seed: 1)],
                    device: NetArguments(taps: .fds([4, 5]), mac: [0x52, 0x54, 0, 0x12, 0x34, 0x5f], mtu: 9000, queuePairs: 2))
        #expect(try Net.parse(a.encode()) == a)
        #expect(a.encode().contains("52:54:00:12:34:5f"))
        let syscall = Net(endpoint: .inheritedFd(3), faults: [FaultSpec(kind: .syscall)], device: NetArguments(taps: .name("tap0")))
        let parsed = try Net.parse(syscall.encode())
        #expect(parsed.sandbox.faultForbiddenSyscall, "a syscall fault turns on the forbidden call")
        #expect(parsed.faults == syscall.faults)
    }

    @Test(arguments: [
        [], ["--fd", "3"], ["--image-fd", "4"], ["--fd", "3", "--socket-path", "/s", "--image-fd", "4"],
        ["--fd", "x", "--image-fd", "4"], ["--fd", "3", "--image-fd", "4", "--path", "/i"], ["--fd", "3", "--image-fd"],
        ["--fd", "3", "--image-fd", "4", "--fault", "drop,percent=5"],
    ])
    func badBlockCommandLines(_ args: [String]) {
        #expect(throws: UsageError.self) { try Block.parse(args) }
    }

    @Test func everyUsageErrorSaysHowToFixIt() {
        for args in [[String](), ["--fd", "3"], ["--fd", "3", "--image-fd", "4", "--bogus"], ["--fd=3", "--tap", "t", "--queue-size", "3"]] {
            do { _ = try Block.parse(args); _ = try Net.parse(args) } catch {
                #expect(error.description.contains("(fix: "), "\(args): \(error)")
            }
        }
    }
}
