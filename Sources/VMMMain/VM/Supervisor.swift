import CShim
import Glibc

/// Watches the device backends from one thread: a backend whose vhost-user socket hangs
/// up, or a spawned worker that exits, stops the VM with a failure naming the device and
/// how it ended, rather than leaving the guest waiting forever on a dead device.
struct Supervisor {
    let backends: [VhostUserBackend]
    let workers: [WorkerProcess?]
    let lifecycle: Lifecycle

    func run() {
        guard !backends.isEmpty else { return }
        let hangup = Int16(Int32(VOLT_POLLRDHUP) | POLLHUP | POLLERR)
        // One socket per device, then one pidfd per spawned worker.
        var fds = backends.map { pollfd(fd: $0.socketFD, events: Int16(VOLT_POLLRDHUP), revents: 0) }
        let workerSlots = workers.enumerated().compactMap { i, w in w.map { (device: i, worker: $0) } }
        fds += workerSlots.map { pollfd(fd: $0.worker.pidFD, events: Int16(POLLIN), revents: 0) }
        while !lifecycle.isFinished {
            guard poll(&fds, nfds_t(fds.count), 200) > 0 else { continue }
            for (i, p) in fds.enumerated() where p.revents != 0 {
                let device = i < backends.count ? i : workerSlots[i - backends.count].device
                guard i >= backends.count || p.revents & hangup != 0 else { continue }
                lifecycle.finish(.failure(explain(device)))
                return
            }
        }
    }

    private func explain(_ device: Int) -> String {
        guard let worker = workers[device] else {
            return "\(backends[device].name): device backend disconnected (its vhost-user socket closed) — the VM cannot continue without it"
        }
        guard let end = worker.waitForExit(milliseconds: 1000) else {
            return "\(worker.name) (pid \(worker.pid)) closed its vhost-user socket — the VM cannot continue without it"
        }
        return "\(worker.name) (pid \(worker.pid)) \(WorkerProcess.describe(end)) — the VM cannot continue without it"
    }
}
