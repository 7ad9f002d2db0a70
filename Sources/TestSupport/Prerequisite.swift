import Glibc
import Testing

/// How a test treats a missing prerequisite (a peer program, /dev/kvm, a built guest):
/// a loud skip on a developer machine, a recorded failure when CI demands everything
/// with VOLT_REQUIRE_KVM=1.
public enum Prerequisite {
    public static var requireAll: Bool {
        guard let value = getenv("VOLT_REQUIRE_KVM") else { return false }
        return String(cString: value) == "1"
    }

    /// Returns true when `condition` holds. Otherwise prints a loud skip and returns
    /// false, or records a failure under VOLT_REQUIRE_KVM=1.
    public static func require(_ condition: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if condition { return true }
        if requireAll {
            Issue.record("required prerequisite missing: \(what) (VOLT_REQUIRE_KVM=1)", sourceLocation: sourceLocation)
        } else {
            print("⚠️  SKIPPED: \(what) — this test did not run")
        }
        return false
    }
}
