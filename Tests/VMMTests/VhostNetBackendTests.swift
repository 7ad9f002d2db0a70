import Foundation
import Logging
import NetTestShim
import Synchronization
import Testing
import VirtioCore
import VoltTestSupport
@testable import VMM

/// The in-kernel vhost-net path, against a recording stand-in for /dev/vhost-net (this host
/// has none): what the guest is offered, the config space, and the exact vhost request
/// sequence at DRIVER_OK and reset. The TAP is real, in a namespace the test makes.
@Suite(.serialized) struct VhostNetBackendTests {
    final class RecordingVhost: VhostKernelDevice, @unchecked Sendable {
        let features: UInt64
        var fileDescriptor: Int32? { nil }
        private let log = Mutex<[String]>([])
        var calls: [String] { log.withLock { $0 } }

        init(features: UInt64) { self.features = features }
        private func record(_ call: String) { log.withLock { $0.append(call) } }

        func setFeatures(_ features: UInt64) throws { record("features 0x\(String(features, radix: 16))") }
        func setMemoryTable(_ regions: [(guest: UInt64, size: UInt64, user: UInt64)]) throws {
            record("mem " + regions.map { "\($0.guest)+\($0.size)@0x\(String($0.user, radix: 16))" }.joined(separator: ","))
        }
        func setVringNum(_ index: Int, _ size: UInt16) throws { record("num \(index) \(size)") }
        func setVringAddr(_ index: Int, descriptors: UInt64, used: UInt64, available: UInt64) throws {
            record("addr \(index) 0x\(String(descriptors, radix: 16)) 0x\(String(used, radix: 16)) 0x\(String(available, radix: 16))")
        }
        func setVringBase(_ index: Int, _ base: UInt16) throws { record("base \(index) \(base)") }
        func getVringBase(_ index: Int) throws -> UInt16 { record("get-base \(index)"); return 0 }
        func setVringKick(_ index: Int, eventFD: Int32) throws { record("kick \(index) \(eventFD >= 0)") }
        func setVringCall(_ index: Int, eventFD: Int32) throws { record("call \(index) \(eventFD >= 0)") }
        func setBackend(_ index: Int, tapFD: Int32) throws { record("backend \(index) \(tapFD)") }
    }

    /// A namespace with TAP vt0 (vnet_hdr), and that TAP opened from a thread inside it.
    final class TapInNamespace {
        let name = "volt-vhn-\(getpid())-\(UUID().uuidString.prefix(6))"
        var tap: TapDevice!

        init(multiQueue: Bool = false) throws {
            _ = try TestEnvironment.run("/usr/sbin/ip", ["netns", "add", name])
            _ = try TestEnvironment.run("/usr/sbin/ip", ["netns", "exec", name, "ip", "tuntap", "add", "dev", "vt0", "mode", "tap",
                                                         "vnet_hdr"] + (multiQueue ? ["multi_queue"] : []))
            // setns changes only the calling thread's namespace: open the TAP from a thread of its own.
            final class Opened: @unchecked Sendable { var result: Result<TapDevice, Error>? }
            let opened = Opened(), done = DispatchSemaphore(value: 0)
            let path = "/run/netns/\(name)"
            Thread {
                let r = nts_enter_netns(path)
                opened.result = r < 0 ? .failure(POSIXError(POSIXErrorCode(rawValue: -r) ?? .EIO))
                                      : Result { try TapDevice(name: "vt0", queuePairs: multiQueue ? 2 : 1) }
                done.signal()
            }.start()
            done.wait()
            tap = try opened.result!.get()
        }

        deinit {
            tap = nil
            _ = try? TestEnvironment.run("/usr/sbin/ip", ["netns", "del", name])
        }
    }

    static let kernelFeatures = NetFeature.version1 | NetFeature.mrgRxbuf | NetFeature.eventIdx | NetFeature.indirectDesc
        | (1 << 27) /* VHOST_NET_F_VIRTIO_NET_HDR */ | (1 << 24) /* NOTIFY_ON_EMPTY */

    func backend(_ device: RecordingVhost, _ tap: TapDevice, memory: GuestMemory, vm: VirtualMachine) throws -> VhostNetBackend {
        try VhostNetBackend(name: "net0", device: device, tap: tap, mac: MACAddress("02:00:00:00:00:07")!, mtu: 1400,
                            memory: memory, vm: vm, mmioBase: 0xd000_0000, irq: 5, logger: Logger(label: "test"))
    }

    @Test func offersConfigAndDrivesTheKernelDevice() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        let ns = try TapInNamespace()
        let memory = try GuestMemory(size: 64 << 20)
        let vm = try VirtualMachine(hypervisor: try Hypervisor(), memory: memory)
        let device = RecordingVhost(features: Self.kernelFeatures)
        let net = try backend(device, ns.tap, memory: memory, vm: vm)

        // Offered: the kernel's ring features, device bits volt-vmm emulates, the TAP's offloads;
        // never the kernel-private bits.
        let f = net.offeredFeatures
        #expect(f & Self.kernelFeatures == NetFeature.version1 | NetFeature.mrgRxbuf | NetFeature.eventIdx | NetFeature.indirectDesc)
        #expect(f & (NetFeature.mac | NetFeature.status | NetFeature.mtu | NetFeature.csum | NetFeature.guestCsum) ==
                NetFeature.mac | NetFeature.status | NetFeature.mtu | NetFeature.csum | NetFeature.guestCsum)
        #expect(f & (1 << 27) == 0 && f & (1 << 24) == 0 && f & NetFeature.mq == 0)
        #expect(try net.readConfig(offset: 0, size: 12) == [2, 0, 0, 0, 0, 7, 1, 0, 1, 0, 0x78, 0x05])
        #expect(net.queueMaxSizes == [256, 256])

        let acked = NetFeature.version1 | NetFeature.mrgRxbuf | NetFeature.mac | NetFeature.guestCsum
        let rx = VirtqueueConfig(size: 256, descriptorTable: 0x10000, availableRing: 0x11000, usedRing: 0x12000)
        let tx = VirtqueueConfig(size: 128, descriptorTable: 0x20000, availableRing: 0x21000, usedRing: 0x22000)
        try net.activate(features: acked, queues: [1: tx, 0: rx])
        let host = { (gpa: UInt64) in "0x" + String(try! memory.hostAddress(gpa, 1), radix: 16) }
        let tapFD = ns.tap.queues[0].rawValue
        #expect(device.calls == [
            "features 0x\(String(acked & Self.kernelFeatures, radix: 16))",
            "mem 0+\(64 << 20)@\(host(0))",
            "num 0 256", "addr 0 \(host(0x10000)) \(host(0x12000)) \(host(0x11000))", "base 0 0", "kick 0 true", "call 0 true", "backend 0 \(tapFD)",
            "num 1 128", "addr 1 \(host(0x20000)) \(host(0x22000)) \(host(0x21000))", "base 1 0", "kick 1 true", "call 1 true", "backend 1 \(tapFD)",
        ])
        try net.reset()
        #expect(Array(device.calls.suffix(4)) == ["backend 0 -1", "get-base 0", "backend 1 -1", "get-base 1"])
    }

    @Test func ringsOutsideGuestMemoryAreRefused() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        let ns = try TapInNamespace()
        let memory = try GuestMemory(size: 16 << 20)
        let vm = try VirtualMachine(hypervisor: try Hypervisor(), memory: memory)
        let device = RecordingVhost(features: Self.kernelFeatures)
        let net = try backend(device, ns.tap, memory: memory, vm: vm)
        let inside = VirtqueueConfig(size: 256, descriptorTable: 0x10000, availableRing: 0x11000, usedRing: 0x12000)
        let outside = VirtqueueConfig(size: 256, descriptorTable: 64 << 20, availableRing: 0x1000, usedRing: 0x2000)
        #expect(throws: (any Error).self) { try net.activate(features: NetFeature.version1, queues: [0: inside, 1: outside]) }
        let tapFD = ns.tap.queues[0].rawValue
        // Ring 0 was already attached: it is detached and stopped again; ring 1 never reached the TAP.
        #expect(device.calls.filter { $0.hasPrefix("backend") || $0.hasPrefix("get-base") }
                == ["backend 0 \(tapFD)", "backend 0 -1", "get-base 0", "backend 1 -1", "get-base 1"], "\(device.calls)")
        try net.reset()
        #expect(device.calls.last == "get-base 1", "nothing left to stop after the failed activation")
    }

    @Test func fallsBackWhenTheKernelLacksWhatWeDrive() throws {
        guard TestEnvironment.require(TestEnvironment.kvmUsable, "/dev/kvm usable") else { return }
        let memory = try GuestMemory(size: 16 << 20)
        let vm = try VirtualMachine(hypervisor: try Hypervisor(), memory: memory)
        do {
            let ns = try TapInNamespace()
            #expect(throws: VhostNetError.self) {
                try backend(RecordingVhost(features: NetFeature.mrgRxbuf), ns.tap, memory: memory, vm: vm)
            }
        }
        let multi = try TapInNamespace(multiQueue: true)
        #expect(throws: VhostNetError.self) {
            try backend(RecordingVhost(features: Self.kernelFeatures), multi.tap, memory: memory, vm: vm)
        }
    }

    @Test func vcpuFilterAllowsOnlyTheNICsFds() {
        let rules = VMMSeccompPolicy.vcpu(vcpuFD: 10, vmFD: 9, vhost: [(device: 20, tap: 21)])
        let ioctls = rules.filter { $0.syscall == "ioctl" }.map { "\($0)" }
        #expect(ioctls.count == 8, "KVM_RUN, GET_REGS, GET_MSRS, GET/SET_DEVICE_ATTR (pause), IRQ_LINE + TAP offload + vhost fd: \(ioctls)")
        #expect(VMMSeccompPolicy.vcpu(vcpuFD: 10, vmFD: 9).filter { $0.syscall == "ioctl" }.count == 6)
    }
}
