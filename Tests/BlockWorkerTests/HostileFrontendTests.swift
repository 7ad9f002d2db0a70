import Foundation
import Testing
import TestFrontend
import VoltTestSupport

/// The jailed volt-blk-worker process against a hostile front-end and guest
/// (`HostileFrontend`): it may refuse and hang up (exit 1) but never dies by a signal
/// (a Swift trap, a fault, a seccomp kill), and exits once the front-end is gone.
@Suite struct HostileFrontendTests {
    @Test(arguments: 1...4)
    func aHostileFrontendNeverCrashesTheWorker(seed: Int) throws {
        let dir = try IntegrationTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = dir.appendingPathComponent("disk.img").path
        _ = FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        var maker = HostileFrontend.MessageMaker(seed: UInt64(seed))
        var refused = 0, survived = 0, returned = 0
        for round in 0..<30 {
            let worker = try IntegrationTests.Worker(dir: dir, arguments: ["--path", image])
            // Connection errors in the chaos are the worker refusing: fine; a crash shows below.
            switch round % 3 {
            case 1: try? HostileFrontend.chaosAfterStart(worker.socket, &maker)
            case 2: returned += (try? HostileFrontend.guestChaos(worker.socket, &maker)) ?? 0
            default:
                try HostileFrontend.protocolChaos(worker.socket, &maker)
            }
            maker.closeAll()
            let status = worker.exitStatus(timeout: 10)
            let reason = worker.process.terminationReason
            #expect(status != nil, "seed \(seed) round \(round): the worker did not exit after the front-end left")
            #expect(reason == .exit, "seed \(seed) round \(round): killed by signal \(status ?? -1): \(worker.errorOutput)")
            if status == 0 { survived += 1 } else { refused += 1 }
            try? FileManager.default.removeItem(atPath: worker.socket)
        }
        #expect(refused > 0, "none of \(survived) rounds was refused: the generator is too tame")
        #expect(returned > 0, "no hostile chain reached the worker's queue")
    }
}
