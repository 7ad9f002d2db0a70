import CShim
import Glibc
import SystemPackage

/// Guest RAM owned by a frontend (the VMM, or the test frontend): a memfd mapped
/// MAP_SHARED once, so its fd can be handed to device workers over vhost-user.
/// `deinit` unmaps and closes.
///
/// `noReserve` adds MAP_NORESERVE to the mapping; `doNotFork` marks it MADV_DONTFORK, so
/// a child forked later (volt-vmm's launcher) never maps guest RAM.
public final class GuestMemoryFile: @unchecked Sendable {
    // @unchecked: all stored properties are immutable; the mapped bytes are shared
    // with other processes by design and are only reached through MemoryMap.
    public let fd: FileDescriptor
    public let size: UInt64
    let base: UnsafeMutableRawPointer

    public init(size: UInt64, name: String = "volt-guest-memory", noReserve: Bool = false,
                doNotFork: Bool = false) throws(MemoryMapError) {
        guard size > 0, size <= UInt64(Int.max) else { throw .createFailed(step: "size \(size)", .invalidArgument) }
        let raw = volt_memfd_create(name, VOLT_MFD_CLOEXEC | VOLT_MFD_ALLOW_SEALING)
        guard raw >= 0 else { throw .createFailed(step: "memfd_create", Errno(rawValue: -raw)) }
        guard ftruncate(raw, off_t(size)) == 0 else {
            let err = Errno(rawValue: errno)
            close(raw)
            throw .createFailed(step: "ftruncate", err)
        }
        let ptr = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED | (noReserve ? MAP_NORESERVE : 0), raw, 0)
        guard let ptr, ptr != MAP_FAILED else {
            let err = Errno(rawValue: errno)
            close(raw)
            throw .createFailed(step: "mmap", err)
        }
        if doNotFork { _ = madvise(ptr, Int(size), MADV_DONTFORK) }
        self.fd = FileDescriptor(rawValue: raw)
        self.size = size
        self.base = ptr
    }

    /// The frontend-virtual address of byte `offset` of the file (what vhost-user
    /// calls the region's "user address").
    public func userAddress(atOffset offset: UInt64) -> UInt64 {
        UInt64(UInt(bitPattern: base)) &+ offset
    }

    deinit {
        munmap(base, Int(size))
        close(fd.rawValue)
    }
}
