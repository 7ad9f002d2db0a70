import VirtioCore

extension MemoryMap {
    /// Maps the regions of a SET_MEM_TABLE message (the backend side of vhost-user):
    /// validated and mapped by `MemoryMap`; the message's fds stay owned by the caller.
    public convenience init(vhostUser regions: [MemoryRegionDescriptor]) throws {
        let table = regions.map {
            VirtioCore.MemoryRegionDescriptor(guestAddress: GuestAddress($0.region.guestAddress), size: $0.region.size,
                                              userAddress: $0.region.userAddress, mmapOffset: $0.region.mmapOffset,
                                              fd: $0.fd.descriptor)
        }
        try self.init(regions: table)
    }
}
