import SystemPackage
import Testing
@testable import VMM
@testable import VMMMain

/// The CLI alone turns VMM errors into exit statuses: operator input 2, runtime failures 1.
@Suite struct ExitStatusTests {
    static let cases: [(any Error, Int32)] = [
        (RunUsageError.noKernel, 2),
        (ConfigError.invalidVMID("a b"), 2),
        (ConfigProblems(file: "vm.json", problems: ["id: bad"]), 2),
        (KernelError.invalidName("x", reason: "r"), 2),
        (KernelImageError.notAKernel(path: "k"), 2),
        (MetricsError.cannotOpen(path: "m", .noSuchFileOrDirectory), 2),
        (MachineError.vcpusUnsupported(requested: 999, max: 254), 2),
        (MachineError.threadStartFailed(name: "t", code: 11), 1),
        (RuntimeDirectoryError.alreadyRunning(id: try! VMID(given: "web1"), pid: 1), 2),
        (RuntimeDirectoryError.uncreatable("/run/volt-vmm/x", .permissionDenied), 1),
        (DeviceError.diskNotAFileOrBlockDevice(path: "/dev/null"), 2),
        (DeviceError.noVersion1(device: "disk0"), 1),
        (HostNetworkError.bridgeNotFound("br9"), 2),
        (HostNetworkError.tunMissing("tap0"), 1),
        (ProcessError.ownPathUnknown, 1),
        (KVMError.apiVersion(11), 1),
    ]

    @Test(arguments: cases.indices)
    func classifies(_ index: Int) {
        let (error, status) = Self.cases[index]
        #expect(ExitStatus.code(for: error) == status, "\(error)")
    }

    @Test func outcomes() {
        #expect(VMOutcome.guestReset.exitCode == 0)
        #expect(VMOutcome.signal(15).exitCode == 143)
        #expect(VMOutcome.failure("x").exitCode == 1)
    }
}
