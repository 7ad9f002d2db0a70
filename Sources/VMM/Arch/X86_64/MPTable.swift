import VirtioCore

/// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its
/// CPUs, the IOAPIC and the ISA interrupt wiring. Linux scans the last KiB of base
/// memory (639 KiB) for the floating pointer, so everything lives in [ebdaStart, 640 KiB),
/// which the e820 map reports as reserved.
enum MPTableError: Error, Equatable, CustomStringConvertible {
    case noCPUs
    case tooManyCPUs(requested: Int, maximum: Int)
    case memory(MemoryMapError)

    var description: String {
        switch self {
        case .noCPUs:
            return "MP table needs at least one vCPU"
        case let .tooManyCPUs(requested, maximum):
            return "MP table in the 1 KiB EBDA can describe at most \(maximum) vCPUs, \(requested) requested"
        case let .memory(error):
            return "cannot write MP table: \(error)"
        }
    }
}

enum MPTable {
    // Sizes from MP spec 1.4 chapter 4 (figures 4-1 to 4-9).
    static let floatingPointerSize = 16
    static let headerSize = 44
    static let processorEntrySize = 20
    static let smallEntrySize = 8         // bus, IOAPIC, I/O and local interrupt entries

    static let isaIRQCount = 16
    static let localInterruptCount = 2    // ExtINT on LINT0, NMI on LINT1

    /// Space the tables may use: the EBDA up to the end of base memory.
    static let area = Int(Layout.lowMemoryEnd - Layout.ebdaStart)

    static let lapicVersion: UInt8 = 0x14 // integrated APIC (>= 0x10; 0x0X means 82489DX)
    static let ioapicVersion: UInt8 = 0x11
    static let isaBusID: UInt8 = 0

    /// CPU signature and feature flags in processor entries (spec 4.3.1). Linux reads
    /// the real values from CPUID; these only need to describe "a P6-family CPU with FPU
    /// and on-chip APIC", so the table does not depend on the host.
    static let cpuSignature: UInt32 = 0x600            // family 6, model 0, stepping 0
    static let cpuFeatures: UInt32 = (1 << 0) | (1 << 9) // FPU, APIC

    /// Bytes taken by everything except the processor entries.
    static var fixedSize: Int {
        floatingPointerSize + headerSize + smallEntrySize * (1 + 1 + isaIRQCount + localInterruptCount)
    }

    /// Most vCPUs the 1 KiB area can describe (40).
    static var maxCPUs: Int { (area - fixedSize) / processorEntrySize }

    /// The IOAPIC takes the first APIC id after the CPUs' (ids 0..<vcpuCount).
    static func ioapicID(vcpuCount: Int) -> UInt8 { UInt8(vcpuCount) }

    /// The floating pointer followed by the configuration table, ready to copy to `address`.
    static func build(vcpuCount: Int, at address: UInt64 = Layout.ebdaStart) throws(MPTableError) -> [UInt8] {
        guard vcpuCount > 0 else { throw .noCPUs }
        guard vcpuCount <= maxCPUs else { throw .tooManyCPUs(requested: vcpuCount, maximum: maxCPUs) }
        let ioapicID = ioapicID(vcpuCount: vcpuCount)

        // Entries, sorted by type as spec 4.3 asks.
        var entries: [UInt8] = []
        for cpu in 0..<vcpuCount {
            entries.appendLE(UInt8(0))                      // processor entry (4.3.1)
            entries.appendLE(UInt8(cpu))                    // local APIC id = vCPU index (KVM's default)
            entries.appendLE(lapicVersion)
            entries.appendLE(UInt8(cpu == 0 ? 0b11 : 0b01)) // EN, plus BP on the boot CPU
            entries.appendLE(cpuSignature)
            entries.appendLE(cpuFeatures)
            entries.append(contentsOf: [UInt8](repeating: 0, count: 8))
        }
        entries.appendLE(UInt8(1))                          // bus entry (4.3.2)
        entries.appendLE(isaBusID)
        entries.append(contentsOf: Array("ISA   ".utf8))    // bus type string, space padded
        entries.appendLE(UInt8(2))                          // IOAPIC entry (4.3.3)
        entries.appendLE(ioapicID)
        entries.appendLE(ioapicVersion)
        entries.appendLE(UInt8(1))                          // EN
        entries.appendLE(UInt32(Layout.ioapicAddress))
        // I/O interrupt entries (4.3.4): ISA IRQ n -> IOAPIC pin n. KVM's default GSI
        // routing sends GSI n to IOAPIC pin n (and PIC line n), and the in-kernel PIT
        // raises GSI 0, so the identity map is what the hardware really does; the PC
        // convention "IRQ0 on pin 2" would be wrong here. Flags 0 = "conforms to the bus":
        // ISA means edge triggered, active high.
        for irq in 0..<isaIRQCount {
            entries.appendLE(UInt8(3))
            entries.appendLE(UInt8(0))                      // INT (vectored by the IOAPIC)
            entries.appendLE(UInt16(0))
            entries.appendLE(isaBusID)
            entries.appendLE(UInt8(irq))
            entries.appendLE(ioapicID)
            entries.appendLE(UInt8(irq))
        }
        // Local interrupt entries (4.3.5): the 8259 PIC on LINT0 (virtual wire mode,
        // spec 3.6.2.2) and NMI on LINT1, for every local APIC (id 0xff).
        for (type, lint) in [(UInt8(3), UInt8(0)), (UInt8(1), UInt8(1))] {
            entries.appendLE(UInt8(4))
            entries.appendLE(type)                          // 3 = ExtINT, 1 = NMI
            entries.appendLE(UInt16(0))
            entries.appendLE(isaBusID)
            entries.appendLE(UInt8(0))
            entries.appendLE(UInt8(0xff))
            entries.appendLE(lint)
        }
        let entryCount = vcpuCount + 1 + 1 + isaIRQCount + localInterruptCount

        // Configuration table header (4.2).
        var table: [UInt8] = []
        table.append(contentsOf: Array("PCMP".utf8))
        table.appendLE(UInt16(headerSize + entries.count))  // base table length
        table.appendLE(UInt8(4))                            // spec revision 1.4
        table.appendLE(UInt8(0))                            // checksum, patched below
        table.append(contentsOf: Array("VOLTVMM ".utf8))    // OEM id, 8 bytes
        table.append(contentsOf: Array("MICROVM     ".utf8)) // product id, 12 bytes
        table.appendLE(UInt32(0))                           // no OEM table
        table.appendLE(UInt16(0))
        table.appendLE(UInt16(entryCount))
        table.appendLE(UInt32(Layout.lapicAddress))
        table.appendLE(UInt16(0))                           // no extended table
        table.appendLE(UInt8(0))
        table.appendLE(UInt8(0))
        table += entries
        table[7] = checksum(table)

        // Floating pointer (4.1), 16-byte aligned; the table follows it directly.
        var pointer: [UInt8] = []
        pointer.append(contentsOf: Array("_MP_".utf8))
        pointer.appendLE(UInt32(address) + UInt32(floatingPointerSize))
        pointer.appendLE(UInt8(1))                          // length in 16-byte paragraphs
        pointer.appendLE(UInt8(4))                          // spec revision 1.4
        pointer.appendLE(UInt8(0))                          // checksum, patched below
        pointer.appendLE(UInt8(0))                          // feature 1: 0 = table present
        pointer.append(contentsOf: [0, 0, 0, 0])            // feature 2 bit 7 clear: no IMCR, virtual wire
        pointer[10] = checksum(pointer)

        return pointer + table
    }

    /// Writes the tables at Layout.ebdaStart.
    static func write(to memory: GuestMemory, vcpuCount: Int) throws(MPTableError) {
        let bytes = try build(vcpuCount: vcpuCount, at: Layout.ebdaStart)
        precondition(bytes.count <= area, "MP table size check out of sync with maxCPUs")
        do {
            try memory.write(bytes, at: Layout.ebdaStart)
        } catch {
            throw .memory(error)
        }
    }

    /// The byte that makes `bytes` sum to zero modulo 256 (spec 4.1 and 4.2).
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(UInt8(0), &+)
    }
}

extension Array where Element == UInt8 {
    /// Appends an integer in little-endian byte order (x86 table layouts).
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
