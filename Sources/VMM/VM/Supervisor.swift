import CShim
import Glibc
import IPC
import Logging

/// Watches the device backends from one thread. A spawned worker that exits or hangs
/// up is, with `--restart=on`, reaped, respawned with the same arguments and fds, and
/// reconnected (the backend replays the device state), within a restart budget. An
/// external backend's hang-up, `--restart=never`, or a spent budget stops the VM with
/// a failure naming the device and how it ended, rather than leaving the guest waiting
/// forever on a dead device.
struct Supervisor {
    let backends: [VhostUserBackend]
    let workers: [SupervisedWorker?]
    let lifecycle: Lifecycle
    let policy: RestartPolicy
    let logger: Logger

    func run() {
        guard !backends.isEmpty else { return }
        let hangup = Int16(Int32(VOLT_POLLRDHUP) | POLLHUP | POLLERR)
        var budgets = backends.map { _ in RestartBudget(policy: policy) }
        while !lifecycle.isFinished {
            // Rebuilt each round: a restart replaces a device's socket and pidfd.
            // One socket per device, then one pidfd per spawned worker.
            var fds = backends.map { pollfd(fd: $0.socketFD, events: Int16(VOLT_POLLRDHUP), revents: 0) }
            let workerSlots = workers.enumerated().compactMap { i, w in w.map { (device: i, worker: $0) } }
            fds += workerSlots.map { pollfd(fd: $0.worker.process.pidFD, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 200) > 0 else { continue }
            var failed: [Int] = []
            for (i, p) in fds.enumerated() where p.revents != 0 {
                let device = i < backends.count ? i : workerSlots[i - backends.count].device
                guard i >= backends.count || p.revents & hangup != 0 else { continue }
                if !failed.contains(device) { failed.append(device) }
            }
            for device in failed {
                guard let worker = workers[device], policy.mode == .on else {
                    lifecycle.finish(.failure(explain(device) + " — the VM cannot continue without it"))
                    return
                }
                guard restart(device, worker, budget: &budgets[device]) else { return }
            }
        }
    }

    /// Replaces a dead worker until one reconnects, or the budget is spent (then the VM
    /// stops, and this returns false).
    private func restart(_ device: Int, _ worker: SupervisedWorker, budget: inout RestartBudget) -> Bool {
        let backend = backends[device]
        backend.markDown()
        var why = explain(device)
        while !lifecycle.isFinished {
            guard let delay = budget.admit(now: volt_monotonic_ns()) else {
                lifecycle.finish(.failure("\(why); restarted \(policy.maxRestarts) times within \(policy.windowNanoseconds / 1_000_000_000) s, giving up — the VM cannot continue without it"))
                return false
            }
            logger.warning("\(why); restarting it in \(delay) ms (restart \(budget.recent.count) of at most \(policy.maxRestarts) per \(policy.windowNanoseconds / 1_000_000_000) s)")
            sleep(milliseconds: delay)
            guard !lifecycle.isFinished else { return false }
            do {
                let connection = try worker.respawn()
                try backend.reconnect(Frontend(connection: connection))
                logger.warning("\(backend.name): \(worker.name) restarted as pid \(worker.process.pid); device state replayed")
                return true
            } catch {
                logger.error("\(backend.name): restarting \(worker.name) failed: \(error)")
                backend.markDown()
                why = explain(device)
            }
        }
        return false
    }

    /// Sleeps in short steps so a VM that ends meanwhile is not held up.
    private func sleep(milliseconds: UInt64) {
        var left = milliseconds
        while left > 0 && !lifecycle.isFinished {
            let step = min(left, 50)
            usleep(UInt32(step * 1000))
            left -= step
        }
    }

    /// How the device's backend ended; reaps a spawned worker (killing one that hung up
    /// but still runs).
    private func explain(_ device: Int) -> String {
        guard let supervised = workers[device] else {
            return "\(backends[device].name): device backend disconnected (its vhost-user socket closed)"
        }
        let worker = supervised.process
        guard let end = worker.waitForExit(milliseconds: 1000) else {
            worker.signal(SIGKILL)
            _ = worker.waitForExit(milliseconds: -1)
            return "\(worker.name) (pid \(worker.pid)) closed its vhost-user socket (killed it)"
        }
        return "\(worker.name) (pid \(worker.pid)) \(supervised.describe(end, pid: worker.pid))"
    }
}
