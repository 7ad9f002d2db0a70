import CShim

/// Phase marks for `volt-vmm run --trace-startup` (CShim/volt_trace.c): cheap enough to
/// take always (one clock read into a fixed table); printed only when VOLT_TRACE_STARTUP=1.
/// Here because every process on the start path (volt-vmm and the workers) links Sandbox.
public enum StartupTrace {
    /// `name` must be a literal: the table keeps its pointer.
    @inline(__always)
    public static func mark(_ name: StaticString) {
        volt_trace_mark(UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self))
    }

    public static var enabled: Bool { volt_trace_enabled() != 0 }

    /// Prints the marks to stderr.
    public static func dump(program: String) {
        _ = volt_trace_dump(2, program)
    }
}
