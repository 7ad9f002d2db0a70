import Glibc
import SystemPackage

/// Sole owner of a file descriptor: closes it when the last reference goes away.
/// Every fd the IPC layer receives from a peer is wrapped in one immediately, so error
/// paths cannot leak descriptors.
public final class OwnedFD: Sendable, CustomStringConvertible {
    public let descriptor: FileDescriptor

    /// Takes ownership of `rawValue` (the caller must not close it).
    public init(taking rawValue: CInt) {
        descriptor = FileDescriptor(rawValue: rawValue)
    }

    public var rawValue: CInt { descriptor.rawValue }

    /// A new, independently owned descriptor for the same open file (close-on-exec).
    public func duplicate() throws -> OwnedFD {
        let r = Glibc.fcntl(rawValue, F_DUPFD_CLOEXEC, 0)
        if r < 0 { throw VhostUserError.system(operation: "fcntl(F_DUPFD_CLOEXEC)", errno: Glibc.errno) }
        return OwnedFD(taking: r)
    }

    public var description: String { "OwnedFD(\(rawValue))" }

    deinit { _ = Glibc.close(rawValue) }
}
