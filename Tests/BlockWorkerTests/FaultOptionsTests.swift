import IPC
import Testing
@testable import BlockWorker

/// `--fault` for volt-blk-worker, and the sectors an `eio,sectors=` fault hits.
@Suite struct BlockFaultOptionsTests {
    @Test func faultOptionsParse() throws {
        let o = try Options.parse(["--fd", "3", "--image-fd", "4", "--fault", "eio,sectors=8-15", "--fault=delay,ms=20",
                                   "--fault", "eio,rate=10,seed=3", "--fault", "crash,after=5"])
        #expect(o.faults == [FaultSpec(kind: .eioSectors(8...15)), FaultSpec(kind: .delay(ms: 20)),
                             FaultSpec(kind: .eioRate(percent: 10), seed: 3), FaultSpec(kind: .crash(after: 5))])
        #expect(!o.sandbox.faultForbiddenSyscall)
        #expect(try Options.parse(["--fd", "3", "--image-fd", "4", "--fault", "syscall"]).sandbox.faultForbiddenSyscall)
    }

    @Test(arguments: ["", "drop,percent=5", "corrupt,percent=5", "eio", "eio,rate=101", "eio,rate=5,sectors=1-2",
                      "eio,sectors=9-3", "eio,sectors=5", "eio,sectors=a-b", "delay", "delay,ms=0", "delay,ms=60001",
                      "crash,after=x", "crash,after=1,after=2", "crash,after=1,ms=2", "syscall,now", "nope"])
    func badFaultOptionsAreRejected(_ text: String) {
        #expect(throws: UsageError.self) { try Options.parse(["--fd", "3", "--image-fd", "4", "--fault", text]) }
    }

    @Test func eioSectorsHitsOverlappingRequestsOnly() {
        let f = FaultInjector([FaultSpec(kind: .eioSectors(8...15))])
        #expect(f.failsIO(firstSector: 0, sectors: 8) == false)
        #expect(f.failsIO(firstSector: 0, sectors: 9))
        #expect(f.failsIO(firstSector: 15, sectors: 1))
        #expect(f.failsIO(firstSector: 16, sectors: 8) == false)
        #expect(f.failsIO(firstSector: 8, sectors: 0) == false)
        #expect(FaultInjector([FaultSpec(kind: .eioRate(percent: 100))]).failsIO(firstSector: 0, sectors: 1))
        #expect(FaultInjector([FaultSpec(kind: .eioRate(percent: 0))]).failsIO(firstSector: 0, sectors: 1) == false)
    }
}
