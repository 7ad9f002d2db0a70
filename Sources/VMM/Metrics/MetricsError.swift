import SystemPackage

/// `--metrics PATH` cannot be written.
public enum MetricsError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, Errno)

    public var description: String {
        switch self {
        case let .cannotOpen(path, errno):
            return "--metrics \(path): \(errno) — check the directory exists and is writable"
        }
    }
}
