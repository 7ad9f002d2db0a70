/// A failure of `volt-vmm run` before or outside the guest: one line for the operator,
/// and whether it is a usage problem (exit 2) or a runtime one (exit 1).
public enum RunError: Error, CustomStringConvertible {
    case usage(String)
    case system(String)

    public var description: String {
        switch self {
        case let .usage(message), let .system(message): return message
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage: return 2
        case .system: return 1
        }
    }
}
