/// A device reachable through x86 I/O port instructions. `offset` is relative to the
/// device's first port; `data` holds 1, 2 or 4 bytes. Devices lock their own state:
/// several vCPU threads may call them at once.
protocol PortIODevice: AnyObject, Sendable {
    func read(offset: UInt16, into data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt16, data: UnsafeRawBufferPointer)
}

enum PortIOBusError: Error, CustomStringConvertible {
    case overlap(base: UInt16, count: UInt16)
    var description: String {
        switch self {
        case let .overlap(base, count): return "I/O ports 0x\(String(base, radix: 16))+\(count) are already claimed"
        }
    }
}

/// Routes port I/O exits to devices by range. Unclaimed ports read as all ones and
/// ignore writes, like an empty ISA bus (Linux probes many legacy ports at boot).
/// Devices are inserted before any vCPU thread starts; afterwards the bus is read-only.
final class PortIOBus: @unchecked Sendable {
    private struct Mapping {
        let base: UInt16
        let count: UInt16
        let device: any PortIODevice
    }

    private var mappings: [Mapping] = []

    func insert(_ device: any PortIODevice, base: UInt16, count: UInt16) throws(PortIOBusError) {
        let end = Int(base) + Int(count)
        if mappings.contains(where: { Int($0.base) < end && Int($0.base) + Int($0.count) > Int(base) }) {
            throw .overlap(base: base, count: count)
        }
        mappings.append(Mapping(base: base, count: count, device: device))
    }

    private func lookup(_ port: UInt16) -> (device: any PortIODevice, offset: UInt16)? {
        for m in mappings where port >= m.base && Int(port) < Int(m.base) + Int(m.count) {
            return (m.device, port - m.base)
        }
        return nil
    }

    func read(port: UInt16, into data: UnsafeMutableRawBufferPointer) {
        if let target = lookup(port) {
            target.device.read(offset: target.offset, into: data)
        } else {
            for i in data.indices { data[i] = 0xff }
        }
    }

    func write(port: UInt16, data: UnsafeRawBufferPointer) {
        if let target = lookup(port) {
            target.device.write(offset: target.offset, data: data)
        }
    }
}
