import CShim
import Testing
@testable import VMM

private func leaf(_ function: UInt32, _ index: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0, flags: UInt32 = 0) -> kvm_cpuid_entry2 {
    var entry = kvm_cpuid_entry2()
    entry.function = function; entry.index = index; entry.flags = flags
    entry.eax = eax; entry.ebx = ebx; entry.ecx = ecx; entry.edx = edx
    return entry
}

private func find(_ entries: [kvm_cpuid_entry2], _ function: UInt32, _ index: UInt32 = 0) -> kvm_cpuid_entry2? {
    entries.first { $0.function == function && $0.index == index }
}

/// A host-like supported list: leaf 1 with TSC-deadline, caches L1d/L1i/L2/L3, a 2-thread
/// host topology in 0xb, thermal leaf, a PMU and the KVM leaves.
private let supported: [kvm_cpuid_entry2] = [
    leaf(0x0, eax: 0x1f, ebx: 0x756e_6547),
    leaf(0x1, eax: 0x806f8, ebx: 0x1234_5678, ecx: 0x7ffa_3203 | CPUID.tscDeadlineBit, edx: 0x0f8b_fbff),
    leaf(0x4, 0, eax: 0x0000_0121 | 0x3f << 26 | 1 << 14, flags: 1),   // L1d
    leaf(0x4, 1, eax: 0x0000_0122 | 0x3f << 26 | 1 << 14, flags: 1),   // L1i
    leaf(0x4, 2, eax: 0x0000_0143 | 0x3f << 26 | 1 << 14, flags: 1),   // L2
    leaf(0x4, 3, eax: 0x0000_0163 | 0x3f << 26 | 0x7f << 14, flags: 1), // L3
    leaf(0x4, 4, flags: 1),                                            // end of list
    leaf(0x6, eax: 0x77 | CPUID.aratBit, ebx: 2, ecx: 0x1 | CPUID.epbBit, edx: 1),
    leaf(0x7, 0, ebx: 0xd19f_47ab, flags: 1),
    leaf(0xa, eax: 0x0804_3504, ebx: 0, ecx: 0, edx: 0x603),
    leaf(0xb, 0, eax: 1, ebx: 2, ecx: 0x100, edx: 7, flags: 1),
    leaf(0xb, 1, eax: 7, ebx: 64, ecx: 0x201, edx: 7, flags: 1),
    leaf(0x4000_0000, eax: 0x4000_0001),
    leaf(0x4000_0001, eax: 0x0100_7afb),
    leaf(0x8000_0000, eax: 0x8000_0008),
]

@Suite struct CPUIDTests {
    @Test(arguments: [(UInt32(0), UInt32(1)), (0, 4), (3, 4), (39, 40)])
    func leaf1(index: UInt32, count: UInt32) throws {
        let adjusted = CPUID.adjust(supported, vcpuIndex: index, vcpuCount: count)
        let l1 = try #require(find(adjusted, 1))
        #expect(l1.ebx >> 24 == index)
        #expect((l1.ebx >> 16) & 0xff == count)
        #expect((l1.ebx >> 8) & 0xff == 8)
        #expect(l1.ebx & 0xff == 0x78)                           // brand index kept
        #expect(l1.ecx & CPUID.hypervisorBit != 0)
        #expect(l1.ecx & CPUID.tscDeadlineBit != 0)              // kept: KVM reported it
        #expect((l1.edx & CPUID.httBit != 0) == (count > 1))
        #expect(l1.eax == 0x806f8)
    }

    @Test func tscDeadlineIsNeverInvented() throws {
        var list = supported
        list[1].ecx &= ~CPUID.tscDeadlineBit
        let l1 = try #require(find(CPUID.adjust(list, vcpuIndex: 0, vcpuCount: 2), 1))
        #expect(l1.ecx & CPUID.tscDeadlineBit == 0)
    }

    @Test func cacheLeafDescribesOurPackage() throws {
        let adjusted = CPUID.adjust(supported, vcpuIndex: 1, vcpuCount: 4)
        for subleaf: UInt32 in 0...3 {
            let cache = try #require(find(adjusted, 4, subleaf))
            #expect(cache.eax >> 26 == 3)                        // 4 cores - 1
            #expect(cache.eax & 0x3fff == find(supported, 4, subleaf)!.eax & 0x3fff)
            let sharing = (cache.eax >> 14) & 0xfff
            #expect(sharing == (subleaf == 3 ? 3 : 0))           // only L3 is shared
        }
        #expect(try #require(find(adjusted, 4, 4)).eax == 0)      // terminator untouched
    }

    @Test(arguments: [(UInt32(0), UInt32(1), UInt32(0)), (2, 3, 2), (5, 8, 3), (8, 9, 4), (39, 40, 6)])
    func extendedTopology(index: UInt32, count: UInt32, coreBits: UInt32) throws {
        let adjusted = CPUID.adjust(supported, vcpuIndex: index, vcpuCount: count)
        let topology = adjusted.filter { $0.function == 0xb }
        #expect(topology.map(\.index) == [0, 1, 2])
        #expect(topology.allSatisfy { $0.flags == CPUID.significantIndex && $0.edx == index })
        let smt = topology[0], core = topology[1], end = topology[2]
        #expect(smt.eax == 0 && smt.ebx == 1 && smt.ecx == 0x100)
        #expect(core.eax == coreBits && core.ebx == count && core.ecx == 0x201)
        #expect(end.eax == 0 && end.ebx == 0 && end.ecx == 2)
        #expect(CPUID.coreIDBits(vcpuCount: count) == coreBits)
        #expect(!adjusted.contains { $0.function == 0x1f })      // not invented when absent
    }

    @Test func leaf1FIsRewrittenWhenPresent() {
        let withV2 = supported + [leaf(0x1f, 0, eax: 1, ebx: 2, ecx: 0x100, edx: 7, flags: 1),
                                  leaf(0x1f, 1, eax: 7, ebx: 64, ecx: 0x201, edx: 7, flags: 1)]
        let adjusted = CPUID.adjust(withV2, vcpuIndex: 3, vcpuCount: 4)
        let v2 = adjusted.filter { $0.function == 0x1f }
        #expect(v2.map(\.index) == [0, 1, 2])
        #expect(v2[1].eax == 2 && v2[1].ebx == 4 && v2.allSatisfy { $0.edx == 3 })
    }

    @Test func thermalAndPMULeavesAreCleared() throws {
        let adjusted = CPUID.adjust(supported, vcpuIndex: 0, vcpuCount: 2)
        let thermal = try #require(find(adjusted, 6))
        #expect(thermal.eax == CPUID.aratBit && thermal.ebx == 0 && thermal.edx == 0)
        #expect(thermal.ecx == 0x1)                              // EPB gone, the rest kept
        let pmu = try #require(find(adjusted, 0xa))
        #expect(pmu.eax == 0 && pmu.ebx == 0 && pmu.ecx == 0 && pmu.edx == 0)
    }

    @Test func kvmLeaves() throws {
        let adjusted = CPUID.adjust(supported, vcpuIndex: 0, vcpuCount: 1)
        let signature = try #require(find(adjusted, 0x4000_0000))
        let bytes = [signature.ebx, signature.ecx, signature.edx].flatMap { word in
            (0..<4).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) }
        }
        #expect(bytes == Array("KVMKVMKVM".utf8) + [0, 0, 0])
        #expect(signature.eax == 0x4000_0001)
        #expect(find(adjusted, 0x4000_0001)?.eax == 0x0100_7afb)  // features as supported

        let noSignature = supported.filter { $0.function != 0x4000_0000 }
        let added = CPUID.adjust(noSignature, vcpuIndex: 0, vcpuCount: 1)
        #expect(find(added, 0x4000_0000)?.ebx == CPUID.kvmSignature.ebx)
    }

    @Test func amdCoreCountFollowsOurTopology() throws {
        let amd = supported + [leaf(0x8000_0008, eax: 0x3030, ecx: 0x7001)]   // host: 2 cores, 7 id bits
        let adjusted = CPUID.adjust(amd, vcpuIndex: 0, vcpuCount: 5)
        #expect(try #require(find(adjusted, 0x8000_0008)).ecx == 0x3004)     // 3 id bits, NC = 4
        let intel = supported + [leaf(0x8000_0008, eax: 0x3027)]
        #expect(try #require(find(CPUID.adjust(intel, vcpuIndex: 0, vcpuCount: 5), 0x8000_0008)).ecx == 0)
    }

    @Test func otherLeavesPassThrough() {
        let adjusted = CPUID.adjust(supported, vcpuIndex: 1, vcpuCount: 2)
        for function: UInt32 in [0, 7, 0x8000_0000] {
            #expect(find(adjusted, function)?.eax == find(supported, function)?.eax)
            #expect(find(adjusted, function)?.ebx == find(supported, function)?.ebx)
        }
        #expect(adjusted.count == supported.count + 1)           // 0xb: 2 host subleaves -> 3
    }
}
