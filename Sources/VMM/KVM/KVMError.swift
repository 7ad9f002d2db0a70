import SystemPackage
import CShim

/// Failures talking to /dev/kvm. Each message names the operation and, where there
/// is one, the fix.
enum KVMError: Error, CustomStringConvertible {
    case open(Errno)
    case apiVersion(Int32)
    case missingCapability(String)
    case ioctl(String, Errno)
    case mmap(String, Errno)
    /// A saved KVM structure of the wrong size (a snapshot from another kernel or damaged).
    case stateSize(String, Int, Int)

    var description: String {
        switch self {
        case .open(.noSuchFileOrDirectory), .open(.noSuchAddressOrDevice):
            return "/dev/kvm: not found — enable virtualization and load the kvm module (modprobe kvm_intel or kvm_amd)"
        case .open(.permissionDenied), .open(.notPermitted):
            return "/dev/kvm: permission denied — run as root or add the user to group kvm"
        case let .open(err):
            return "/dev/kvm: cannot open: \(err)"
        case let .apiVersion(v):
            return "/dev/kvm: KVM API version \(v), expected 12 — this kernel's KVM is not supported"
        case let .missingCapability(cap):
            return "/dev/kvm: the host's KVM lacks \(cap), which volt-vmm requires"
        case let .ioctl(what, err):
            return "KVM \(what) failed: \(err)"
        case let .mmap(what, err):
            return "mmap of \(what) failed: \(err)"
        case let .stateSize(what, got, expected):
            return "KVM \(what): the saved state has \(got) bytes, this host's KVM expects \(expected) — the snapshot was taken on another kernel or is damaged"
        }
    }
}

/// Issues an ioctl through the C shim and turns -errno into a typed error.
@discardableResult
func kvmIoctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawPointer?, _ what: @autoclosure () -> String) throws(KVMError) -> Int32 {
    let r = volt_ioctl(fd, request, arg)
    guard r >= 0 else { throw KVMError.ioctl(what(), Errno(rawValue: -r)) }
    return r
}

@discardableResult
func kvmIoctl(_ fd: Int32, _ request: UInt, value: UInt, _ what: @autoclosure () -> String) throws(KVMError) -> Int32 {
    let r = volt_ioctl_int(fd, request, value)
    guard r >= 0 else { throw KVMError.ioctl(what(), Errno(rawValue: -r)) }
    return r
}
