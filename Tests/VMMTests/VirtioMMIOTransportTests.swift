import Logging
import Synchronization
import Testing
import VoltTestSupport
@testable import VMM

@Suite struct VirtioMMIOTransportTests {
    final class FakeBackend: VirtioDeviceBackend, @unchecked Sendable {
        let deviceType: UInt32 = 2
        let offeredFeatures: UInt64 = (1 << 32) | (1 << 9) | (1 << 28)
        let queueMaxSizes: [UInt16] = [256, 128]
        var config: [UInt8] = Array(0..<64)
        var activations: [(UInt64, [Int: VirtqueueConfig])] = []
        var resets = 0
        var failActivation = false

        func readConfig(offset: UInt32, size: UInt32) throws -> [UInt8] {
            Array(config[Int(offset)..<Int(offset + size)])
        }
        func writeConfig(offset: UInt32, data: [UInt8]) throws {
            config.replaceSubrange(Int(offset)..<Int(offset) + data.count, with: data)
        }
        func activate(features: UInt64, queues: [Int: VirtqueueConfig]) throws {
            if failActivation { throw RunFailure("backend refused") }
            activations.append((features, queues))
        }
        func reset() throws { resets += 1 }
        var quiesced = 0
        var resumed: [(UInt64, [Int: VirtqueueConfig], [Int: UInt16])] = []
        func quiesce() throws -> [Int: UInt16] {
            quiesced += 1
            return Dictionary(uniqueKeysWithValues: (activations.last?.1.keys.sorted() ?? []).map { ($0, UInt16(7 + $0)) })
        }
        func resume(features: UInt64, queues: [Int: VirtqueueConfig], bases: [Int: UInt16]) throws {
            resumed.append((features, queues, bases))
        }
    }

    typealias R = VirtioMMIOTransport.Register
    typealias S = VirtioMMIOTransport.Status

    let backend = FakeBackend()
    let memory: GuestMemory
    final class Counter: Sendable { let value = Mutex(0) }
    let interrupts = Counter()
    let transport: VirtioMMIOTransport

    init() throws {
        memory = try GuestMemory(size: 16 << 20)
        let counter = interrupts
        transport = VirtioMMIOTransport(name: "test-blk", irq: 5, backend: backend, memory: memory,
                                        logger: Logger(label: "test"), raiseInterrupt: { counter.value.withLock { $0 += 1 } })
    }

    func read(_ offset: UInt64) -> UInt32 {
        var v: UInt32 = 0
        withUnsafeMutableBytes(of: &v) { transport.read(offset: offset, into: $0) }
        return v
    }

    func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value) { transport.write(offset: offset, data: $0) }
    }

    /// The driver side of §3.1.1 up to FEATURES_OK.
    func negotiate(_ features: UInt64) {
        write(R.status, S.acknowledge)
        write(R.status, S.acknowledge | S.driver)
        write(R.driverFeaturesSel, 0); write(R.driverFeatures, UInt32(truncatingIfNeeded: features))
        write(R.driverFeaturesSel, 1); write(R.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
        write(R.status, S.acknowledge | S.driver | S.featuresOK)
    }

    func setupQueue(_ index: UInt32, size: UInt32, desc: UInt64, avail: UInt64, used: UInt64) {
        write(R.queueSel, index)
        write(R.queueNum, size)
        write(R.queueDescLow, UInt32(desc)); write(R.queueDescHigh, 0)
        write(R.queueDriverLow, UInt32(avail)); write(R.queueDriverHigh, 0)
        write(R.queueDeviceLow, UInt32(used)); write(R.queueDeviceHigh, 0)
        write(R.queueReady, 1)
    }

    @Test func identificationRegisters() {
        #expect(read(R.magic) == 0x7472_6976)
        #expect(read(R.version) == 2)
        #expect(read(R.deviceID) == 2)
        write(R.deviceFeaturesSel, 0)
        #expect(read(R.deviceFeatures) == UInt32(truncatingIfNeeded: backend.offeredFeatures))
        write(R.deviceFeaturesSel, 1)
        #expect(read(R.deviceFeatures) == 1)
        write(R.deviceFeaturesSel, 2)
        #expect(read(R.deviceFeatures) == 0)
        write(R.queueSel, 1)
        #expect(read(R.queueNumMax) == 128)
        write(R.queueSel, 2)
        #expect(read(R.queueNumMax) == 0, "no such queue")
        #expect(read(R.shmLenLow) == 0xffff_ffff, "no shared memory regions")
    }

    @Test func fullInitializationActivatesTheBackend() {
        negotiate((1 << 32) | (1 << 9))
        #expect(read(R.status) & S.featuresOK != 0)
        setupQueue(0, size: 64, desc: 0x10000, avail: 0x11000, used: 0x12000)
        #expect(read(R.queueReady) == 1)
        write(R.status, S.acknowledge | S.driver | S.featuresOK | S.driverOK)
        #expect(read(R.status) == S.acknowledge | S.driver | S.featuresOK | S.driverOK)
        #expect(backend.activations.count == 1)
        #expect(backend.activations.first?.0 == (1 << 32) | (1 << 9))
        #expect(backend.activations.first?.1 == [0: VirtqueueConfig(size: 64, descriptorTable: 0x10000, availableRing: 0x11000, usedRing: 0x12000)])
        #expect(read(R.interruptStatus) & 1 == 1, "vring bit reads set while live (irqfd path)")
    }

    @Test func unofferedOrLegacyFeaturesAreRefused() {
        negotiate((1 << 32) | (1 << 3))          // bit 3 not offered
        #expect(read(R.status) & S.featuresOK == 0)
        write(R.status, 0)
        negotiate(1 << 9)                          // no VERSION_1
        #expect(read(R.status) & S.featuresOK == 0)
    }

    @Test func badQueuesNeverReachTheBackend() {
        negotiate(1 << 32)
        setupQueue(0, size: 100, desc: 0x10000, avail: 0x11000, used: 0x12000)   // not a power of two
        #expect(read(R.queueReady) == 0)
        setupQueue(1, size: 64, desc: 0x10008, avail: 0x11000, used: 0x12000)   // size ok; queue 1 max 128
        #expect(read(R.queueReady) == 1)
        setupQueue(0, size: 64, desc: 0xfff000, avail: 0x11000, used: 0x12000)  // desc table runs off RAM
        write(R.status, S.acknowledge | S.driver | S.featuresOK | S.driverOK)
        #expect(backend.activations.isEmpty)
        #expect(read(R.status) & S.needsReset != 0, "device asks for reset instead of using bad rings")
    }

    @Test func queueRegistersFreezeWhenReady() {
        negotiate(1 << 32)
        setupQueue(0, size: 64, desc: 0x10000, avail: 0x11000, used: 0x12000)
        write(R.queueNum, 32)
        #expect(read(R.queueNum) == 64)
        write(R.queueDescLow, 0x20000)
        #expect(read(R.queueDescLow) == 0x10000)
    }

    @Test func resetAfterActivationStopsTheBackendAndClearsState() {
        negotiate(1 << 32)
        setupQueue(0, size: 64, desc: 0x10000, avail: 0x11000, used: 0x12000)
        write(R.status, S.acknowledge | S.driver | S.featuresOK | S.driverOK)
        write(R.status, 0)
        #expect(backend.resets == 1)
        #expect(read(R.status) == 0)
        write(R.queueSel, 0)
        #expect(read(R.queueReady) == 0 && read(R.queueNum) == 0)
        #expect(read(R.interruptStatus) == 0)
    }

    @Test func failedActivationSetsNeedsResetAndInterrupts() {
        backend.failActivation = true
        negotiate(1 << 32)
        setupQueue(0, size: 64, desc: 0x10000, avail: 0x11000, used: 0x12000)
        write(R.status, S.acknowledge | S.driver | S.featuresOK | S.driverOK)
        #expect(read(R.status) & S.needsReset != 0)
        #expect(interrupts.value.withLock { $0 } == 1)
        #expect(read(R.interruptStatus) & 2 == 2, "config-change interrupt announces DEVICE_NEEDS_RESET")
    }

    @Test func configSpaceIsForwardedAndGenerationBumps() {
        var b: UInt8 = 0
        withUnsafeMutableBytes(of: &b) { transport.read(offset: R.config + 5, into: $0) }
        #expect(b == 5)
        withUnsafeBytes(of: UInt8(0xaa)) { transport.write(offset: R.config + 7, data: $0) }
        #expect(backend.config[7] == 0xaa)
        let gen = read(R.configGeneration)
        transport.notifyConfigChange()
        #expect(read(R.configGeneration) == gen + 1)
        #expect(read(R.interruptStatus) & 2 == 2)
        write(R.interruptACK, 2)
        #expect(read(R.interruptStatus) & 2 == 0)
    }

    @Test func misSizedRegisterAccessIsIgnored() {
        var b: UInt16 = 0
        withUnsafeMutableBytes(of: &b) { transport.read(offset: R.magic, into: $0) }
        #expect(b == 0xffff)
        withUnsafeBytes(of: UInt16(0)) { transport.write(offset: R.status, data: $0) }
        #expect(read(R.magic) == 0x7472_6976)
    }
}
