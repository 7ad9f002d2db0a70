import Logging
import Synchronization
import VirtioCore

/// A virtio-mmio version 2 (modern) transport (virtio 1.2 §4.2.2): the register window
/// a driver sees at one guest-physical address. It negotiates features, collects queue
/// setup, runs the device status state machine, and forwards config space and DRIVER_OK
/// to a `VirtioDeviceBackend`. Queue notifications and used-buffer interrupts do not pass
/// through here: they are an ioeventfd and an irqfd between KVM and the device process.
final class VirtioMMIOTransport: MMIODevice {
    // Register offsets (virtio 1.2 §4.2.2).
    enum Register {
        static let magic: UInt64 = 0x000, version: UInt64 = 0x004, deviceID: UInt64 = 0x008, vendorID: UInt64 = 0x00c
        static let deviceFeatures: UInt64 = 0x010, deviceFeaturesSel: UInt64 = 0x014
        static let driverFeatures: UInt64 = 0x020, driverFeaturesSel: UInt64 = 0x024
        static let queueSel: UInt64 = 0x030, queueNumMax: UInt64 = 0x034, queueNum: UInt64 = 0x038
        static let queueReady: UInt64 = 0x044, queueNotify: UInt64 = 0x050
        static let interruptStatus: UInt64 = 0x060, interruptACK: UInt64 = 0x064, status: UInt64 = 0x070
        static let queueDescLow: UInt64 = 0x080, queueDescHigh: UInt64 = 0x084
        static let queueDriverLow: UInt64 = 0x090, queueDriverHigh: UInt64 = 0x094
        static let queueDeviceLow: UInt64 = 0x0a0, queueDeviceHigh: UInt64 = 0x0a4
        static let shmSel: UInt64 = 0x0ac, shmLenLow: UInt64 = 0x0b0, shmLenHigh: UInt64 = 0x0b4
        static let shmBaseLow: UInt64 = 0x0b8, shmBaseHigh: UInt64 = 0x0bc
        static let queueReset: UInt64 = 0x0c0
        static let configGeneration: UInt64 = 0x0fc, config: UInt64 = 0x100
    }

    enum Status {
        static let acknowledge: UInt32 = 1, driver: UInt32 = 2, driverOK: UInt32 = 4, featuresOK: UInt32 = 8
        static let needsReset: UInt32 = 64, failed: UInt32 = 128
    }

    static let magicValue: UInt32 = 0x7472_6976   // "virt"
    static let vendor: UInt32 = 0x564f_4c54      // "VOLT"
    static let interruptVring: UInt32 = 1, interruptConfig: UInt32 = 2

    struct QueueState: Codable, Equatable {
        var config = VirtqueueConfig(size: 0, descriptorTable: 0, availableRing: 0, usedRing: 0)
        var ready = false
    }

    /// The registers as the driver left them (what a snapshot keeps).
    struct State: Codable, Equatable {
        var status: UInt32 = 0
        var deviceFeaturesSel: UInt32 = 0
        var driverFeaturesSel: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSel: UInt32 = 0
        var queues: [QueueState]
        var configGeneration: UInt32 = 0
        var interruptStatus: UInt32 = 0
        var activated = false
    }

    let name: String
    let irq: UInt32
    private let backend: any VirtioDeviceBackend
    private let memory: GuestMemory
    private let raiseInterrupt: @Sendable () -> Void
    private let logger: Logger
    private let state: Mutex<State>

    init(name: String, irq: UInt32, backend: any VirtioDeviceBackend, memory: GuestMemory,
         logger: Logger, raiseInterrupt: @escaping @Sendable () -> Void) {
        self.name = name
        self.irq = irq
        self.backend = backend
        self.memory = memory
        self.logger = logger
        self.raiseInterrupt = raiseInterrupt
        state = Mutex(State(queues: Array(repeating: QueueState(), count: backend.queueMaxSizes.count)))
    }

    // MARK: MMIODevice

    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        if offset >= Register.config {
            readConfig(offset: offset - Register.config, into: data)
            return
        }
        // Registers below the config space are 32 bits wide and must be accessed as such (§4.2.2.2).
        guard data.count == 4, offset % 4 == 0 else {
            for i in data.indices { data[i] = 0xff }
            return
        }
        let value = state.withLock { s in registerValue(offset, &s) }
        data.storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= Register.config {
            writeConfig(offset: offset - Register.config, data: Array(data))
            return
        }
        guard data.count == 4, offset % 4 == 0 else {
            logger.debug("\(name): ignored \(data.count)-byte write at register 0x\(String(offset, radix: 16))")
            return
        }
        let value = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        state.withLock { s in setRegister(offset, value, &s) }
    }

    /// Signals a configuration change to the driver (§4.2.3.2).
    func notifyConfigChange() {
        state.withLock { s in
            s.configGeneration &+= 1
            s.interruptStatus |= Self.interruptConfig
        }
        raiseInterrupt()
    }

    // MARK: Snapshots

    /// Stops the device's rings for a snapshot (the VM is paused): their bases, nothing
    /// in flight; with the registers as the driver left them.
    func quiesce() throws -> (state: State, bases: [Int: UInt16]) {
        try state.withLock { s in (s, s.activated ? try backend.quiesce() : [:]) }
    }

    /// Starts the rings again where they stopped (after the snapshot was written).
    func resume(bases: [Int: UInt16]) throws {
        try state.withLock { s in
            guard s.activated else { return }
            try backend.resume(features: s.driverFeatures, queues: readyQueues(s), bases: bases)
        }
    }

    /// A restored VM: the saved registers, checked as a driver's writes would be, and a
    /// device that was live is started at the saved ring bases.
    func restore(_ saved: State, bases: [Int: UInt16]) throws {
        let maxSizes = backend.queueMaxSizes
        guard saved.queues.count == maxSizes.count else {
            throw SnapshotError.invalid("\(name): \(saved.queues.count) queues saved, the device has \(maxSizes.count)")
        }
        for (index, q) in saved.queues.enumerated() where q.ready {
            guard q.config.size > 0, q.config.size <= maxSizes[index], q.config.size & (q.config.size - 1) == 0 else {
                throw SnapshotError.invalid("\(name): queue \(index) size \(q.config.size)")
            }
            try validateRing(q.config, index: index)
        }
        if saved.activated {
            guard saved.driverFeatures & ~backend.offeredFeatures == 0 else {
                throw SnapshotError.invalid("\(name): driver features 0x\(String(saved.driverFeatures, radix: 16)) beyond what the device offers (0x\(String(backend.offeredFeatures, radix: 16)))")
            }
        }
        try state.withLock { s in
            s = saved
            if saved.activated { try backend.resume(features: saved.driverFeatures, queues: readyQueues(saved), bases: bases) }
        }
    }

    private func readyQueues(_ s: State) -> [Int: VirtqueueConfig] {
        var ready: [Int: VirtqueueConfig] = [:]
        for (index, q) in s.queues.enumerated() where q.ready { ready[index] = q.config }
        return ready
    }

    // MARK: Registers

    private func registerValue(_ offset: UInt64, _ s: inout State) -> UInt32 {
        switch offset {
        case Register.magic: return Self.magicValue
        case Register.version: return 2
        case Register.deviceID: return backend.deviceType
        case Register.vendorID: return Self.vendor
        case Register.deviceFeatures:
            switch s.deviceFeaturesSel {
            case 0: return UInt32(truncatingIfNeeded: backend.offeredFeatures)
            case 1: return UInt32(truncatingIfNeeded: backend.offeredFeatures >> 32)
            default: return 0
            }
        case Register.queueNumMax:
            return Int(s.queueSel) < backend.queueMaxSizes.count ? UInt32(backend.queueMaxSizes[Int(s.queueSel)]) : 0
        case Register.queueNum: return selectedQueue(s).map { UInt32($0.config.size) } ?? 0
        case Register.queueReady: return selectedQueue(s).map { $0.ready ? 1 : 0 } ?? 0
        case Register.interruptStatus:
            // Used-buffer interrupts arrive through an irqfd straight from the device
            // process, so the VMM cannot know whether one is pending. While the device is
            // live it reports the vring bit: the driver then checks every used ring, which
            // is exactly the right work for a real interrupt and a no-op for a spurious one.
            return s.interruptStatus | (s.activated ? Self.interruptVring : 0)
        case Register.status: return s.status
        case Register.configGeneration: return s.configGeneration
        case Register.queueDescLow: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.descriptorTable) } ?? 0
        case Register.queueDescHigh: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.descriptorTable >> 32) } ?? 0
        case Register.queueDriverLow: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.availableRing) } ?? 0
        case Register.queueDriverHigh: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.availableRing >> 32) } ?? 0
        case Register.queueDeviceLow: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.usedRing) } ?? 0
        case Register.queueDeviceHigh: return selectedQueue(s).map { UInt32(truncatingIfNeeded: $0.config.usedRing >> 32) } ?? 0
        case Register.shmLenLow, Register.shmLenHigh, Register.shmBaseLow, Register.shmBaseHigh:
            return 0xffff_ffff   // no shared memory regions (§4.2.2: length -1 means none)
        default: return 0
        }
    }

    private func selectedQueue(_ s: State) -> QueueState? {
        Int(s.queueSel) < s.queues.count ? s.queues[Int(s.queueSel)] : nil
    }

    private func setRegister(_ offset: UInt64, _ value: UInt32, _ s: inout State) {
        switch offset {
        case Register.deviceFeaturesSel: s.deviceFeaturesSel = value
        case Register.driverFeaturesSel: s.driverFeaturesSel = value
        case Register.driverFeatures:
            // Features are fixed once FEATURES_OK is set (§3.1.1).
            guard s.status & Status.featuresOK == 0 else { return }
            switch s.driverFeaturesSel {
            case 0: s.driverFeatures = (s.driverFeatures & ~0xffff_ffff) | UInt64(value)
            case 1: s.driverFeatures = (s.driverFeatures & 0xffff_ffff) | (UInt64(value) << 32)
            default: break
            }
        case Register.queueSel: s.queueSel = value
        case Register.queueNum:
            modifyQueue(&s) { q in q.config.size = UInt16(truncatingIfNeeded: value) }
        case Register.queueReady:
            setQueueReady(value == 1, &s)
        case Register.queueDescLow: modifyQueue(&s) { $0.config.descriptorTable = setLow($0.config.descriptorTable, value) }
        case Register.queueDescHigh: modifyQueue(&s) { $0.config.descriptorTable = setHigh($0.config.descriptorTable, value) }
        case Register.queueDriverLow: modifyQueue(&s) { $0.config.availableRing = setLow($0.config.availableRing, value) }
        case Register.queueDriverHigh: modifyQueue(&s) { $0.config.availableRing = setHigh($0.config.availableRing, value) }
        case Register.queueDeviceLow: modifyQueue(&s) { $0.config.usedRing = setLow($0.config.usedRing, value) }
        case Register.queueDeviceHigh: modifyQueue(&s) { $0.config.usedRing = setHigh($0.config.usedRing, value) }
        case Register.interruptACK: s.interruptStatus &= ~value
        case Register.status: setStatus(value, &s)
        case Register.queueNotify:
            // Normally consumed by the ioeventfd in KVM; reaching here means an index no
            // device queue has (or a kick before setup): nothing to do.
            logger.trace("\(name): notify for queue \(value) reached the VMM")
        default:
            logger.debug("\(name): ignored write 0x\(String(value, radix: 16)) to register 0x\(String(offset, radix: 16))")
        }
    }

    /// Queue registers may only change while the queue is not ready (§4.2.3.2) and
    /// before DRIVER_OK.
    private func modifyQueue(_ s: inout State, _ change: (inout QueueState) -> Void) {
        let index = Int(s.queueSel)
        guard index < s.queues.count, !s.queues[index].ready, s.status & Status.driverOK == 0 else { return }
        change(&s.queues[index])
    }

    private func setQueueReady(_ ready: Bool, _ s: inout State) {
        let index = Int(s.queueSel)
        guard index < s.queues.count, s.status & Status.driverOK == 0 else { return }
        if ready {
            let q = s.queues[index].config
            let max = backend.queueMaxSizes[index]
            guard q.size > 0, q.size <= max, q.size & (q.size - 1) == 0 else {
                logger.warning("\(name): queue \(index) size \(q.size) is not a power of two up to \(max); not ready")
                return
            }
        }
        s.queues[index].ready = ready
    }

    private func setStatus(_ value: UInt32, _ s: inout State) {
        if value == 0 {
            resetDevice(&s)
            return
        }
        // The driver may only add bits (§2.1.2); anything else is a driver bug.
        guard value & s.status == s.status else {
            logger.warning("\(name): driver cleared status bits (0x\(String(s.status, radix: 16)) -> 0x\(String(value, radix: 16))); ignoring")
            return
        }
        let added = value & ~s.status
        var newStatus = value
        if added & Status.featuresOK != 0 {
            let offered = backend.offeredFeatures
            if s.driverFeatures & ~offered != 0 || s.driverFeatures & VirtioFeature.version1 == 0 {
                // Leave FEATURES_OK clear so the driver sees the refusal (§3.1.1 step 6).
                logger.warning("\(name): driver features 0x\(String(s.driverFeatures, radix: 16)) not accepted (offered 0x\(String(offered, radix: 16)), VERSION_1 required)")
                newStatus &= ~Status.featuresOK
            }
        }
        if added & Status.driverOK != 0 {
            guard newStatus & Status.featuresOK != 0 else {
                logger.warning("\(name): DRIVER_OK without FEATURES_OK")
                s.status = newStatus | Status.needsReset
                return
            }
            do {
                try activate(&s)
            } catch {
                logger.error("\(name): activation failed: \(error)")
                newStatus |= Status.needsReset
                s.interruptStatus |= Self.interruptConfig
                s.status = newStatus
                raiseInterrupt()
                return
            }
        }
        s.status = newStatus
    }

    private func activate(_ s: inout State) throws {
        var ready: [Int: VirtqueueConfig] = [:]
        for (index, q) in s.queues.enumerated() where q.ready {
            try validateRing(q.config, index: index)
            ready[index] = q.config
        }
        try backend.activate(features: s.driverFeatures, queues: ready)
        s.activated = true
        logger.info("\(name): driver ready, features 0x\(String(s.driverFeatures, radix: 16)), \(ready.count) queue(s)")
    }

    /// Rings must lie in guest RAM with the spec's alignment (§2.7) before a device
    /// process is told about them.
    private func validateRing(_ q: VirtqueueConfig, index: Int) throws {
        let parts: [(String, UInt64, UInt64, UInt64)] = [
            ("descriptor table", q.descriptorTable, SplitRingLayout.descriptorTableSize(q.size), SplitRingLayout.descriptorAlignment),
            ("available ring", q.availableRing, SplitRingLayout.availableRingSize(q.size), SplitRingLayout.availableAlignment),
            ("used ring", q.usedRing, SplitRingLayout.usedRingSize(q.size), SplitRingLayout.usedAlignment),
        ]
        for (what, address, length, alignment) in parts {
            guard address % alignment == 0, memory.contains(address, length: length) else {
                throw DeviceError.ringNotInGuestRAM(queue: index, part: what, address: address, length: length)
            }
        }
    }

    private func resetDevice(_ s: inout State) {
        if s.activated {
            do { try backend.reset() } catch { logger.error("\(name): reset failed: \(error)") }
        }
        let count = s.queues.count
        s = State(queues: Array(repeating: QueueState(), count: count))
        logger.debug("\(name): reset by driver")
    }

    // MARK: Config space

    private func readConfig(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        do {
            let bytes = try backend.readConfig(offset: UInt32(offset), size: UInt32(data.count))
            for i in data.indices { data[i] = i < bytes.count ? bytes[i] : 0 }
        } catch {
            logger.warning("\(name): config read at 0x\(String(offset, radix: 16)) failed: \(error)")
            for i in data.indices { data[i] = 0xff }
        }
    }

    private func writeConfig(offset: UInt64, data: [UInt8]) {
        do {
            try backend.writeConfig(offset: UInt32(offset), data: data)
        } catch {
            logger.warning("\(name): config write at 0x\(String(offset, radix: 16)) failed: \(error)")
        }
    }
}

private func setLow(_ value: UInt64, _ low: UInt32) -> UInt64 { (value & ~0xffff_ffff) | UInt64(low) }
private func setHigh(_ value: UInt64, _ high: UInt32) -> UInt64 { (value & 0xffff_ffff) | (UInt64(high) << 32) }
