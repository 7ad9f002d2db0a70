/// What the loaders hand to vCPU setup: how the boot vCPU must start.
enum BootEntry: Equatable {
    /// PVH: 32-bit protected mode, paging off, EBX = guest-physical address of hvm_start_info.
    case pvh(entry: UInt64, startInfo: UInt64)
    /// Linux 64-bit boot protocol: long mode with identity paging, RSI = zero page address.
    case linux64(entry: UInt64, zeroPage: UInt64)
}
