import CShim
import IPC
import SystemPackage

/// The eventfds that keep volt-vmm out of a device's data path: one kick eventfd per queue,
/// registered as a KVM ioeventfd on the transport's QueueNotify register (datamatch = the
/// queue index), and one call eventfd registered as a KVM irqfd on the device's interrupt.
/// Whoever serves the queues (a vhost-user backend or in-kernel vhost-net) gets these fds.
struct QueueNotifiers {
    let kickFDs: [OwnedFD]
    let callFD: OwnedFD

    init(vm: VirtualMachine, mmioBase: UInt64, irq: UInt32, queues: Int) throws {
        kickFDs = try (0..<queues).map { index in
            let fd = try Self.eventFD()
            try vm.addIoeventfd(address: mmioBase + VirtioMMIOTransport.Register.queueNotify,
                                datamatch: UInt32(index), eventFD: fd.rawValue)
            return fd
        }
        callFD = try Self.eventFD()
        try vm.addIrqfd(gsi: irq, eventFD: callFD.rawValue)
    }

    private static func eventFD() throws -> OwnedFD {
        let fd = volt_eventfd(0, VOLT_EFD_CLOEXEC | VOLT_EFD_NONBLOCK)
        guard fd >= 0 else { throw DeviceError.eventfdFailed(Errno(rawValue: -fd)) }
        return OwnedFD(taking: fd)
    }
}
