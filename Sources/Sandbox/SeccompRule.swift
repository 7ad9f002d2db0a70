/// One line of a seccomp allowlist: a system call, the argument conditions that must all
/// hold (none: any arguments), what happens when they do, and why the worker needs it.
/// Several rules for the same call are alternatives (libseccomp ORs them).
public struct SeccompRule: Sendable, Equatable, CustomStringConvertible {
    public enum Action: Sendable, Equatable {
        case allow
        /// Fail with this errno instead of running (e.g. clone3 -> ENOSYS so glibc falls
        /// back to clone, whose flags a filter can read).
        case fail(errno: Int32)
    }

    public let syscall: String
    public let conditions: [ArgCondition]
    public let action: Action
    public let why: String

    public init(_ syscall: String, _ conditions: ArgCondition..., why: String) {
        self.syscall = syscall; self.conditions = conditions; self.action = .allow; self.why = why
    }

    public init(_ syscall: String, _ conditions: ArgCondition..., failing errno: Int32, why: String) {
        self.syscall = syscall; self.conditions = conditions; self.action = .fail(errno: errno); self.why = why
    }

    /// The call runs (rather than failing with an errno).
    public var allows: Bool { action == .allow }

    public var description: String {
        let args = conditions.isEmpty ? "" : " if " + conditions.map(\.description).joined(separator: " && ")
        switch action {
        case .allow: return "\(syscall)\(args)"
        case let .fail(e): return "\(syscall)\(args) -> errno \(e)"
        }
    }
}

/// A test on one syscall argument. Only masked comparisons of the low 32 bits or of
/// explicit masks are offered: the kernel reads `int` arguments (fcntl and ioctl
/// commands, prctl options) as 32 bits, so a full 64-bit equality would let garbage in
/// the upper half turn an allowed call into a killed one, never the reverse.
public struct ArgCondition: Sendable, Equatable, CustomStringConvertible {
    public let index: UInt32
    public let mask: UInt64
    public let value: UInt64

    public var description: String {
        if mask == 0xFFFF_FFFF { return "arg\(index) == 0x\(String(value, radix: 16))" }
        if value == 0 { return "arg\(index) & 0x\(String(mask, radix: 16)) == 0" }
        return "arg\(index) & 0x\(String(mask, radix: 16)) == 0x\(String(value, radix: 16))"
    }
}

/// Builds conditions: `Arg(1) == F_GETFL`, `Arg(2).hasNone(PROT_EXEC)`, `Arg(0).hasAll(CLONE_THREAD)`.
public struct Arg: Sendable {
    public let index: UInt32
    public init(_ index: UInt32) { self.index = index }

    /// The argument's low 32 bits equal `value` (int-typed arguments).
    public static func == (arg: Arg, value: UInt64) -> ArgCondition {
        ArgCondition(index: arg.index, mask: 0xFFFF_FFFF, value: value & 0xFFFF_FFFF)
    }
    public static func == (arg: Arg, value: Int32) -> ArgCondition { arg == UInt64(UInt32(bitPattern: value)) }

    /// None of `bits` is set.
    public func hasNone(_ bits: UInt64) -> ArgCondition { ArgCondition(index: index, mask: bits, value: 0) }
    /// All of `bits` are set.
    public func hasAll(_ bits: UInt64) -> ArgCondition { ArgCondition(index: index, mask: bits, value: bits) }
    /// `arg & mask == value` (e.g. fallocate modes: only these bits, exactly).
    public func masked(_ mask: UInt64, equals value: UInt64) -> ArgCondition {
        ArgCondition(index: index, mask: mask, value: value)
    }
}
