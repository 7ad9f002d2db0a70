/// A device in the guest-physical MMIO space. `offset` is relative to the device's base;
/// `data` holds 1, 2, 4 or 8 bytes. Devices lock their own state (several vCPUs may call).
protocol MMIODevice: AnyObject, Sendable {
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

enum MMIOBusError: Error, CustomStringConvertible {
    case overlap(base: UInt64, size: UInt64)
    var description: String {
        switch self {
        case let .overlap(base, size): return "MMIO range 0x\(String(base, radix: 16))+0x\(String(size, radix: 16)) is already claimed"
        }
    }
}

/// Routes MMIO exits by address. Unclaimed addresses read as all ones and ignore writes.
/// Devices are inserted before any vCPU thread starts; afterwards the bus is read-only.
final class MMIOBus: @unchecked Sendable {
    private struct Mapping {
        let base: UInt64
        let size: UInt64
        let device: any MMIODevice
    }

    private var mappings: [Mapping] = []

    func insert(_ device: any MMIODevice, base: UInt64, size: UInt64) throws(MMIOBusError) {
        if mappings.contains(where: { $0.base < base &+ size && base < $0.base &+ $0.size }) {
            throw .overlap(base: base, size: size)
        }
        mappings.append(Mapping(base: base, size: size, device: device))
    }

    private func lookup(_ address: UInt64, _ length: Int) -> (device: any MMIODevice, offset: UInt64)? {
        for m in mappings where address >= m.base && address - m.base + UInt64(length) <= m.size {
            return (m.device, address - m.base)
        }
        return nil
    }

    func read(address: UInt64, into data: UnsafeMutableRawBufferPointer) {
        if let target = lookup(address, data.count) {
            target.device.read(offset: target.offset, into: data)
        } else {
            for i in data.indices { data[i] = 0xff }
        }
    }

    func write(address: UInt64, data: UnsafeRawBufferPointer) {
        if let target = lookup(address, data.count) {
            target.device.write(offset: target.offset, data: data)
        }
    }
}
