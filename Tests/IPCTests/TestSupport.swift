import CShim
import Foundation
import Glibc
@testable import IPC
import SystemPackage

enum TestError: Error { case setup(String) }

func makeEventFD() throws -> OwnedFD {
    let fd = volt_eventfd(0, Int32(VOLT_EFD_CLOEXEC))
    guard fd >= 0 else { throw TestError.setup("eventfd: \(-fd)") }
    return OwnedFD(taking: fd)
}

func makeMemFD(size: Int) throws -> OwnedFD {
    let fd = volt_memfd_create("ipc-test", UInt32(VOLT_MFD_CLOEXEC))
    guard fd >= 0 else { throw TestError.setup("memfd: \(-fd)") }
    guard ftruncate(fd, off_t(size)) == 0 else { close(fd); throw TestError.setup("ftruncate") }
    return OwnedFD(taking: fd)
}

func signal(_ fd: OwnedFD, _ value: UInt64 = 1) -> Bool {
    var v = value
    return write(fd.rawValue, &v, 8) == 8
}

func readCounter(_ fd: OwnedFD) -> UInt64? {
    var v: UInt64 = 0
    return read(fd.rawValue, &v, 8) == 8 ? v : nil
}

func openFDCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Runs `body` on its own thread; `wait()` joins it and returns its result.
final class Background<T>: @unchecked Sendable {
    private var result: Result<T, Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping () throws -> T) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    func wait(seconds: Double = 30) throws -> T {
        guard done.wait(timeout: .now() + seconds) == .success else { throw TestError.setup("background thread timed out") }
        return try result!.get()
    }
}

/// A device that records what the handler tells it.
final class FakeDevice: VhostUserDevice, @unchecked Sendable {
    var deviceFeatures: UInt64 = (1 << 32) | (1 << 29)   // VERSION_1, EVENT_IDX
    var protocolFeatures: UInt64 = .protocolFeatures(.mq, .replyAck, .config, .inflightShmfd, .resetDevice, .logShmfd)
    let queueCount = 2
    let maxQueueSize = 256
    let configSpace: [UInt8] = (0..<16).map { UInt8($0 * 3) }

    var ackedFeatures: UInt64?
    var regions: [MemoryRegionDescriptor] = []
    var setups: [Int: QueueSetup] = [:]
    var kicks: [Int: OwnedFD?] = [:]
    var calls: [Int: OwnedFD?] = [:]
    var errs: [Int: OwnedFD?] = [:]
    var started: Set<Int> = []
    var events: [String] = []
    var configWrites: [(UInt32, [UInt8])] = []
    var nextAvail: UInt16 = 42
    var failStart = false

    func setFeatures(_ acked: UInt64) throws { ackedFeatures = acked; events.append("features") }
    func config(offset: UInt32, size: UInt32) throws -> [UInt8] {
        let end = Int(offset) + Int(size)
        guard end <= configSpace.count else { throw DeviceOperationUnsupported(operation: "config beyond end") }
        return Array(configSpace[Int(offset)..<end])
    }
    func setConfig(offset: UInt32, data: [UInt8], liveMigration: Bool) throws { configWrites.append((offset, data)) }
    func setMemoryTable(_ regions: [MemoryRegionDescriptor]) throws { self.regions = regions; events.append("mem") }
    func configureQueue(_ index: Int, _ setup: QueueSetup) throws { setups[index] = setup; events.append("configure\(index)") }
    func setQueueKick(_ index: Int, fd: OwnedFD?) throws { kicks[index] = fd; events.append("kick\(index)") }
    func setQueueCall(_ index: Int, fd: OwnedFD?) throws { calls[index] = fd; events.append("call\(index)") }
    func setQueueErr(_ index: Int, fd: OwnedFD?) throws { errs[index] = fd; events.append("err\(index)") }
    func startQueue(_ index: Int) throws {
        if failStart { throw DeviceOperationUnsupported(operation: "start") }
        started.insert(index); events.append("start\(index)")
    }
    func disableQueue(_ index: Int) throws { started.remove(index); events.append("disable\(index)") }
    func stopQueue(_ index: Int) throws -> UInt16 { started.remove(index); kicks[index] = nil; events.append("stop\(index)"); return nextAvail }
    func getInflight(_ request: InflightDescription) throws -> (InflightDescription, OwnedFD) {
        let size = UInt64(request.numQueues) * 4096
        let fd = try makeMemFD(size: Int(size))
        return (InflightDescription(mmapSize: size, mmapOffset: 0, numQueues: request.numQueues, queueSize: request.queueSize), fd)
    }
    func reset() { started.removeAll(); kicks.removeAll(); events.append("reset") }
}
