import Foundation
import IPC
@testable import NetWorker
import Testing
import VirtioCore
import VoltTestSupport

/// `--fault` for volt-net-worker: option parsing, and drop/corrupt on a real TAP.
@Suite(.serialized) struct NetFaultTests {
    static let base = NetFeature.version1 | NetFeature.eventIdx

    @Test func faultOptionsParse() throws {
        let o = try Options.parse(["--fd", "3", "--tap-fd", "4", "--fault", "drop,percent=10", "--fault=corrupt,percent=5,seed=9"])
        #expect(o.faults == [FaultSpec(kind: .drop(percent: 10)), FaultSpec(kind: .corrupt(percent: 5), seed: 9)])
        let s = try Options.parse(["--fd", "3", "--tap-fd", "4", "--fault", "syscall"])
        #expect(s.sandbox.faultForbiddenSyscall, "syscall reuses --fault-forbidden-syscall")
        #expect(try Options.parse(["--fd", "3", "--tap-fd", "4", "--fault", "crash,after=7"]).faults == [FaultSpec(kind: .crash(after: 7))])
    }

    @Test(arguments: ["", "eio,rate=5", "delay,ms=3", "drop", "drop,percent=101", "drop,percent=x", "corrupt,rate=5",
                      "crash", "crash,after=-1", "drop,percent=5,percent=6", "syscall,x=1", "bogus"])
    func badFaultOptionsAreRejected(_ text: String) {
        #expect(throws: UsageError.self) { try Options.parse(["--fd", "3", "--tap-fd", "4", "--fault", text]) }
    }

    private func harness(_ faults: [FaultSpec]) throws -> DeviceHarness? {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8) for a TAP in a network namespace") else { return nil }
        var config = NetDeviceConfig()
        config.faults = faults
        return try DeviceHarness(features: Self.base, config: config)
    }

    @Test func dropAllTX() throws {
        guard let h = try harness([FaultSpec(kind: .drop(percent: 100))]) else { return }
        defer { h.close() }
        let head = try h.guestSend([UInt8](repeating: 0, count: 12) + DeviceHarness.frame("VOLT-NET-DROP"))
        #expect(try h.waitUsed(1)?.id == UInt32(head), "a dropped frame's chain still goes back")
        #expect(h.peerReceive(timeout: 300) == nil, "nothing reached the TAP")
        let m = h.metrics()
        #expect(m.faultsInjected == 1 && m.txFrames == 0)
    }

    @Test func corruptAllTX() throws {
        guard let h = try harness([FaultSpec(kind: .corrupt(percent: 100))]) else { return }
        defer { h.close() }
        let frame = DeviceHarness.frame("VOLT-NET-CORRUPT", length: 200)
        _ = try h.guestSend([UInt8](repeating: 0, count: 12) + frame)
        let got = try #require(h.peerReceive())
        #expect(got.count == frame.count)
        let diffs = zip(got, frame).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(diffs.count == 1 && diffs.first?.offset == frame.count / 2, "one byte, mid-frame, flipped")
        #expect(h.metrics().faultsInjected == 1)
    }

    @Test func dropAndCorruptRX() throws {
        guard let h = try harness([FaultSpec(kind: .corrupt(percent: 100))]) else { return }
        defer { h.close() }
        let posted = try h.postRX(count: 4, size: 1526)
        usleep(50_000)
        let frame = DeviceHarness.frame("VOLT-NET-RX-CORRUPT", length: 300)
        #expect(h.peerSend(frame))
        let used = try #require(try h.waitUsed(0))
        let bytes = try h.map.read(at: try #require(posted[UInt16(used.id)]), count: Int(used.length))
        let diffs = zip(bytes.dropFirst(12), frame).filter { $0.0 != $0.1 }
        #expect(diffs.count == 1, "exactly one byte of the frame flipped")
        #expect(h.metrics().faultsInjected == 1)

        guard let d = try harness([FaultSpec(kind: .drop(percent: 100))]) else { return }
        defer { d.close() }
        _ = try d.postRX(count: 4, size: 1526)
        usleep(50_000)
        #expect(d.peerSend(frame))
        #expect(try d.waitUsed(0, timeout: 0.5) == nil, "a dropped frame never reaches the guest")
        #expect(d.metrics().faultsInjected >= 1 && d.metrics().rxFrames == 0)
    }

    @Test func percentagesAreDeterministicPerSeed() {
        let a = FaultInjector([FaultSpec(kind: .drop(percent: 30), seed: 1)])
        let b = FaultInjector([FaultSpec(kind: .drop(percent: 30), seed: 1)])
        let c = FaultInjector([FaultSpec(kind: .drop(percent: 30), seed: 2)])
        let ra = (0..<1000).map { _ in a.roll(30) }
        #expect(ra == (0..<1000).map { _ in b.roll(30) })
        #expect(ra != (0..<1000).map { _ in c.roll(30) })
        #expect((200...400).contains(ra.filter { $0 }.count), "about 30 %")
    }
}
