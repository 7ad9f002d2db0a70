import Foundation
import Testing
import TestFrontend
import VoltTestSupport

/// The jailed volt-net-worker process (on a TAP in a test namespace) against a hostile
/// front-end and guest (`HostileFrontend`): it may refuse and hang up (exit 1) but never
/// dies by a signal (a Swift trap, a fault, a seccomp kill), and exits once the
/// front-end is gone. Guest chaos goes mostly to TX (frames onto the TAP), sometimes to RX.
@Suite struct HostileFrontendTests {
    @Test(arguments: 1...3)
    func aHostileFrontendNeverCrashesTheWorker(seed: Int) throws {
        guard TestEnvironment.require(NetNamespace.available, "root, /dev/net/tun and ip(8)") else { return }
        let ns = try NetNamespace()
        defer { ns.delete() }
        let socket = IntegrationTests.socketPath("hostile-\(seed)")
        defer { unlink(socket) }
        var maker = HostileFrontend.MessageMaker(seed: UInt64(seed))
        var refused = 0, survived = 0, returned = 0
        for round in 0..<24 {
            unlink(socket)
            let worker = try Background("/usr/sbin/ip", ["netns", "exec", ns.name, IntegrationTests.worker,
                                                         "--socket-path", socket, "--tap", ns.tap])
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: socket) && worker.process.isRunning && Date() < deadline { usleep(5_000) }
            // Connection errors in the chaos are the worker refusing: fine; a crash shows below.
            switch round % 3 {
            case 1: try? HostileFrontend.chaosAfterStart(socket, &maker, queueCount: 2)
            case 2:
                let tx = maker.chance(70)
                returned += (try? HostileFrontend.guestChaos(socket, &maker, queueCount: 2, queue: tx ? 1 : 0,
                                                             usedTimeout: tx ? 1 : 0.05)) ?? 0
            default: try? HostileFrontend.protocolChaos(socket, &maker)
            }
            maker.closeAll()
            let exited = worker.wait(timeout: 10)
            if !exited { worker.stop() }
            #expect(exited, "seed \(seed) round \(round): the worker did not exit after the front-end left")
            #expect(worker.process.terminationReason == .exit,
                    "seed \(seed) round \(round): killed by signal \(worker.process.terminationStatus): \(worker.stderr)")
            if worker.process.terminationStatus == 0 { survived += 1 } else { refused += 1 }
        }
        #expect(refused > 0, "none of \(survived) rounds was refused: the generator is too tame")
        #expect(returned > 0, "no hostile chain reached the worker's TX queue")
    }
}
