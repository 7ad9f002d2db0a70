import CShim
import Glibc

/// Watches the device backends from one thread: a backend whose vhost-user socket hangs
/// up (it exited, crashed or closed the connection) stops the VM with a failure naming
/// the device, rather than leaving the guest waiting forever on a dead device.
struct Supervisor {
    let backends: [VhostUserBackend]
    let lifecycle: Lifecycle

    func run() {
        guard !backends.isEmpty else { return }
        var fds = backends.map { pollfd(fd: $0.socketFD, events: Int16(VOLT_POLLRDHUP), revents: 0) }
        while !lifecycle.isFinished {
            let n = poll(&fds, nfds_t(fds.count), 200)
            guard n > 0 else { continue }
            for (i, p) in fds.enumerated() where p.revents & Int16(Int32(VOLT_POLLRDHUP) | POLLHUP | POLLERR) != 0 {
                lifecycle.finish(.failure("\(backends[i].name): device backend disconnected (its vhost-user socket closed) — the VM cannot continue without it"))
                return
            }
        }
    }
}
