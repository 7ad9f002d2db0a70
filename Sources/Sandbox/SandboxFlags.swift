/// The sandbox options both workers accept.
///
///   --no-sandbox                 UNSAFE, debugging only: no namespaces, root, Landlock,
///                                capability drop or seccomp.
///   --seccomp=kill|log           kill (default) or UNSAFE log: forbidden calls only
///                                reach the kernel log (dmesg / audit type=1326).
///
/// Hidden (tests only; not in --help):
///   --fault-forbidden-syscall    on SET_OWNER, call socket(AF_INET): the worker must die with SIGSYS.
///   --probe-sandbox              after sandboxing, try to open and create files (with
///                                openat/mkdir added to the filter, so Landlock and the
///                                empty root answer), print each errno on stderr, then
///                                socket(AF_INET) (SIGSYS).
public struct SandboxFlags: Equatable, Sendable {
    public var enabled = true
    public var seccompMode = SeccompMode.kill
    public var faultForbiddenSyscall = false
    public var probe = false

    public init() {}

    public static let usage = """
          --seccomp=MODE       kill (default), or log: UNSAFE, forbidden calls are only logged (dmesg)
          --no-sandbox         UNSAFE, debugging only: run without namespaces, Landlock, seccomp
        """

    /// Takes `name` (with its `=value` part in `inline`, if any; `next` is the argument
    /// after it) if it is a sandbox flag. Returns nil for other options, else how many
    /// arguments it used (1, or 2 when the value was `next`).
    public mutating func parse(_ name: String, inline: String?, next: String?) throws(FlagError) -> Int? {
        func noValue() throws(FlagError) {
            if inline != nil { throw FlagError("\(name) takes no value: write just \(name)") }
        }
        switch name {
        case "--no-sandbox": try noValue(); enabled = false
        case "--seccomp":
            guard let v = inline ?? next else { throw FlagError("--seccomp needs a value: --seccomp=kill or --seccomp=log") }
            guard let mode = SeccompMode(rawValue: v) else { throw FlagError("--seccomp \(v): use kill or log") }
            seccompMode = mode
            return inline == nil ? 2 : 1
        case "--fault-forbidden-syscall": try noValue(); faultForbiddenSyscall = true
        case "--probe-sandbox": try noValue(); probe = true
        default: return nil
        }
        return 1
    }

    public struct FlagError: Error, Equatable, CustomStringConvertible {
        public let description: String
        public init(_ d: String) { description = d }
    }
}
