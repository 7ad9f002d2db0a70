import CShim
import VirtioCore
import Glibc
import IPC

/// One queue of a TAP interface, opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
/// non-blocking, with a 12-byte vnet header (virtio 1.x virtio_net_hdr incl. num_buffers).
final class Tap {
    static let vnetHeaderSize: CInt = 12

    let fd: OwnedFD
    let name: String
    let multiQueue: Bool

    private init(fd: OwnedFD, name: String, multiQueue: Bool) {
        self.fd = fd; self.name = name; self.multiQueue = multiQueue
    }

    /// Opens `count` queues of the TAP called `name` (created if absent; needs CAP_NET_ADMIN).
    static func open(name: String, count: Int) throws(NetWorkerError) -> [Tap] {
        guard !name.isEmpty, name.utf8.count < Int(VOLT_IFNAMSIZ) else {
            throw .usage("--tap \(name): interface names are 1 to 15 bytes", fix: "pass a shorter name")
        }
        let base = VOLT_IFF_TAP | VOLT_IFF_NO_PI | VOLT_IFF_VNET_HDR
        var taps: [Tap] = []
        for i in 0..<count {
            // A single queue tries without IFF_MULTI_QUEUE first; a persistent TAP made
            // with `multi_queue` only accepts it (EINVAL), so retry with it.
            var attempts = count > 1 ? [base | VOLT_IFF_MULTI_QUEUE] : [base, base | VOLT_IFF_MULTI_QUEUE]
            if i > 0 { attempts = [base | VOLT_IFF_MULTI_QUEUE] }
            var lastError: Int32 = 0
            for flags in attempts {
                var out = [CChar](repeating: 0, count: Int(VOLT_IFNAMSIZ))
                let fd = volt_tap_open(name, flags, &out)
                if fd >= 0 {
                    taps.append(Tap(fd: OwnedFD(taking: fd), name: String(cString: out),
                                    multiQueue: flags & VOLT_IFF_MULTI_QUEUE != 0))
                    lastError = 0
                    break
                }
                lastError = -fd
                if lastError != EINVAL { break }
            }
            if lastError != 0 {
                let fix: String
                switch lastError {
                case EPERM, EACCES: fix = "run with CAP_NET_ADMIN, or create the TAP beforehand owned by this user (ip tuntap add dev \(name) mode tap vnet_hdr user $USER)"
                case EBUSY: fix = "the TAP is in use; pick another name or stop its other user"
                case EINVAL: fix = "recreate the TAP with matching flags (ip tuntap add dev \(name) mode tap vnet_hdr\(count > 1 ? " multi_queue" : ""))"
                case ENOENT, ENODEV: fix = "load the tun driver or make /dev/net/tun available"
                default: fix = "check that /dev/net/tun exists and \(name) is a TAP"
                }
                throw .tap("cannot open TAP \(name) queue \(i)", errno: lastError, fix: fix)
            }
        }
        for t in taps { try t.configure() }
        return taps
    }

    /// Adopts an inherited TAP fd (`--tap-fd N`): it must already be a TAP opened with
    /// IFF_NO_PI and IFF_VNET_HDR.
    static func adopt(fd raw: CInt) throws(NetWorkerError) -> Tap {
        var flags: CInt = 0
        var out = [CChar](repeating: 0, count: Int(VOLT_IFNAMSIZ))
        let r = volt_tap_get_iff(raw, &flags, &out)
        guard r >= 0 else {
            throw .tap("--tap-fd \(raw) is not an attached TAP fd", errno: -r,
                       fix: "pass an fd from open(/dev/net/tun) + TUNSETIFF, inherited without close-on-exec")
        }
        let needed = VOLT_IFF_TAP | VOLT_IFF_NO_PI | VOLT_IFF_VNET_HDR
        guard flags & needed == needed else {
            throw .usage("--tap-fd \(raw): the TAP was opened with flags 0x\(String(flags, radix: 16)), without IFF_TAP|IFF_NO_PI|IFF_VNET_HDR",
                         fix: "open it with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR")
        }
        _ = volt_set_cloexec(raw)
        let tap = Tap(fd: OwnedFD(taking: raw), name: String(cString: out), multiQueue: flags & VOLT_IFF_MULTI_QUEUE != 0)
        try tap.configure()
        return tap
    }

    private func configure() throws(NetWorkerError) {
        var r = volt_set_nonblocking(fd.rawValue)
        guard r >= 0 else { throw .tap("TAP \(name): O_NONBLOCK", errno: -r, fix: "pass a TAP fd") }
        r = volt_tap_set_vnet_hdr_size(fd.rawValue, Self.vnetHeaderSize)
        guard r >= 0 else { throw .tap("TAP \(name): TUNSETVNETHDRSZ 12", errno: -r, fix: "use a kernel with TUNSETVNETHDRSZ (2.6.35+)") }
        // Nothing offloaded towards the guest until it acks GUEST_* features.
        r = volt_tap_set_offload(fd.rawValue, 0)
        guard r >= 0 else { throw .tap("TAP \(name): TUNSETOFFLOAD 0", errno: -r, fix: "pass a TAP fd") }
    }

    /// The TUN_F_* offloads this TAP accepts (leaves them at 0).
    func supportedOffloads() -> UInt32 { NetDeviceModel.probeTapOffloads(fd: fd.rawValue) }

    /// TUNSETOFFLOAD. Returns 0 or -errno.
    func setOffload(_ flags: UInt32) -> CInt { volt_tap_set_offload(fd.rawValue, flags) }

    /// TUNSETQUEUE attach / detach (multiqueue TAPs only). Returns 0 or -errno.
    func setAttached(_ attached: Bool) -> CInt {
        volt_tap_set_queue(fd.rawValue, attached ? VOLT_IFF_ATTACH_QUEUE : VOLT_IFF_DETACH_QUEUE)
    }
}
