import Foundation
import Testing
import VoltTestSupport
@testable import VMM

/// Boots the project's test guests and kernel under KVM and checks that what the guest
/// saw matches what volt-vmm was asked for.
@Suite(.serialized) struct BootTests {
    func guest(_ name: String) -> String? {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return nil }
        guard let path = TestEnvironment.guest(name) else {
            Issue.record("test guest \(name) did not build (make -C guests)")
            return nil
        }
        return path
    }

    @Test func helloResetsAndExitsZero() throws {
        guard let hello = guest("hello") else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", hello])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST hello: ok"))
        #expect(r.stderr.contains("guest boot-timer:"), "the boot-timer port write is reported")
    }

    @Test func tripleFaultExitsOneWithRIP() throws {
        guard let crash = guest("crash") else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", crash])
        #expect(r.stdout.contains("VOLT-GUEST crash: faulting"))
        #expect(r.status == 1)
        #expect(r.stderr.contains("triple fault") && r.stderr.contains("RIP 0x"), "stderr: \(r.stderr)")
    }

    @Test func sigtermStopsAHaltedGuest() throws {
        guard let hello = guest("hello") else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", hello, "--cmdline", "halt"],
                                           stopWhen: "VOLT-GUEST hello: ok", timeout: 20)
        #expect(!r.timedOut)
        #expect(r.status == 128 + SIGTERM, "SIGTERM ends the VM with 128+15, stderr: \(r.stderr)")
    }

    struct FactsCase: CustomTestStringConvertible, Sendable {
        var vcpus: Int
        var memoryMiB: UInt64
        var cmdline: String
        var testDescription: String { "\(vcpus) vCPU, \(memoryMiB) MiB" }
    }

    static let factsCases = [
        FactsCase(vcpus: 1, memoryMiB: 64, cmdline: "one cpu"),
        FactsCase(vcpus: 2, memoryMiB: 256, cmdline: "console=ttyS0 two=cpus x"),
    ]

    @Test(arguments: factsCases) func factsMatchTheConfiguration(_ c: FactsCase) throws {
        guard let factsGuest = guest("facts") else { return }
        let initrd = try Self.makeInitrd()
        let r = try TestEnvironment.runVMM(["run", "--kernel", factsGuest, "--vcpus", "\(c.vcpus)",
                                            "--memory", "\(c.memoryMiB)", "--cmdline", c.cmdline,
                                            "--initrd", initrd.path])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let facts = Self.parseFacts(r.stdout)
        #expect(facts["cmdline"] == c.cmdline)
        #expect(facts["mp_checksum"] == "ok")
        #expect(facts["mp_cpus"] == "\(c.vcpus)")
        #expect(facts["mp_bsp"] == "0")
        #expect(facts["mp_ioapic"] == "0xfec00000")
        #expect(facts["cpuid_hypervisor"] == "1")
        #expect(facts["cpuid_vendor"] == "KVMKVMKVM")
        // RAM the guest can use: everything but the EBDA and the 640K-1M hole.
        let memory = c.memoryMiB << 20
        #expect(facts["ram_bytes"] == "\(memory - 0x100000 + 0x9fc00)")
        #expect(facts["modules"] == "1")
        let module = facts["module0"] ?? ""
        #expect(module.contains("size=0x\(String(initrd.size, radix: 16))") && module.contains("first4=1f8b0800"), "\(module)")
        #expect(r.stdout.contains("VOLT-GUEST facts: done"))
    }

    @Test func uartInterruptsCarryOutputAndInput() throws {
        guard let uart = guest("uart_irq") else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", uart], stdin: "volt42\n", inputAfter: "READY", timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("VOLT-GUEST uart-irq: tx via interrupts"))
        #expect(r.stdout.contains("VOLT-GUEST uart-irq: got=volt42"), "stdin reaches the guest: \(r.stdout)")
        let counts = Self.parseFacts(r.stdout.replacingOccurrences(of: "VOLT-GUEST uart-irq: ", with: "FACT "))
        #expect(Int(counts["thre_irqs"]?.split(separator: " ").first ?? "") ?? 0 > 0, "THRE interrupts drove the output")
        #expect(r.stdout.contains("rx_irqs=") && !r.stdout.contains("rx_irqs=0"), "RX interrupts delivered input")
    }

    @Test func storedKernelNameResolves() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard TestEnvironment.require(TestEnvironment.storedKernel("vmlinux") != nil,
                                      "a stored kernel (volt-vmm kernel build)") else { return }
        let r = try TestEnvironment.runVMM(["run", "--kernel", "default"], stopWhen: "Linux version 6.1", timeout: 120)
        #expect(r.stdout.contains("Linux version 6.1"), "`--kernel default` boots the store's newest kernel")
    }

    @Test func linuxBootsThroughPVHToItsBanner() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard TestEnvironment.require(TestEnvironment.storedKernel("vmlinux") != nil,
                                      "a stored kernel (volt-vmm kernel build)") else { return }
        let vmlinux = TestEnvironment.storedKernel("vmlinux")!
        // Full Linux cannot finish booting on a PVM host (emulation failure); the banner,
        // SMP discovery from our MP table and the serial console are what this host can show.
        let r = try TestEnvironment.runVMM(["run", "--kernel", vmlinux, "--vcpus", "2", "--memory", "256"],
                                           stopWhen: "nr_cpu_ids=2", timeout: 120)
        #expect(r.stdout.contains("Linux version 6.1"), "banner on our serial console")
        #expect(r.stdout.contains("nr_cpu_ids=2"), "Linux found both vCPUs in the MP table")
        #expect(!r.timedOut, "stdout: \(r.stdout.suffix(2000))")
    }

    @Test func linuxBootsThroughBzImage() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        guard TestEnvironment.require(TestEnvironment.storedKernel("bzImage") != nil,
                                      "a stored kernel (volt-vmm kernel build)") else { return }
        let bzImage = TestEnvironment.storedKernel("bzImage")!
        // The decompressor runs in long mode as we entered it, finds its cmdline in the zero
        // page (earlyprintk=serial) and prints on our UART. On this PVM host the rest of the
        // boot runs under instruction emulation and takes minutes, so the test stops here.
        let r = try TestEnvironment.runVMM(["run", "--kernel", bzImage, "--cmdline", "console=ttyS0 earlyprintk=serial"],
                                           stopWhen: "Decompressing Linux", timeout: 120)
        #expect(r.stdout.contains("early console in extract_kernel"), "the decompressor read earlyprintk=serial from our zero page")
        #expect(r.stdout.contains("Decompressing Linux"), "decompressor output on our serial: \(r.stdout.suffix(500)) \(r.stderr)")
        #expect(!r.timedOut)
    }

    static func parseFacts(_ output: String) -> [String: String] {
        var facts: [String: String] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("FACT ") {
            let body = line.dropFirst(5)
            if let eq = body.firstIndex(of: "="), !body[..<eq].contains(" ") {
                facts[String(body[..<eq])] = String(body[body.index(after: eq)...])
            } else if let space = body.firstIndex(of: " ") {
                facts[String(body[..<space])] = String(body[body.index(after: space)...])
            }
        }
        return facts
    }

    static func makeInitrd() throws -> (path: String, size: Int) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-boot-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("initrd.cpio.gz").path
        // A gzip member of a tiny newc archive: the guest checks the gzip magic and size.
        let r = try TestEnvironment.run("/bin/sh", ["-c", "cd \(dir.path) && echo hi > f && echo f | cpio -o -H newc 2>/dev/null | gzip -n > \(path)"])
        guard r.status == 0 else { throw RunFailure("cannot build test initrd: \(r.stderr)") }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return (path, size)
    }
}
