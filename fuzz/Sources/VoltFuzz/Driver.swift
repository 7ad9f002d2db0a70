import Glibc

// libFuzzer entry. SwiftPM links an executable target's `main` to `VoltFuzz_main`
// (--defsym), so that symbol hands control to libFuzzer's driver. VOLT_FUZZ_TARGET
// names the target each run exercises (scripts/fuzz.sh sets it).

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Every target: a name and a function over one input that traps (`invariant`) when
/// the code under test breaks a rule.
let targets: [(name: String, run: ([UInt8]) -> Void)] = [
    ("vhost_message", fuzzVhostMessage),
    ("virtqueue", fuzzVirtqueue),
]

nonisolated(unsafe) var selected: (([UInt8]) -> Void)?

/// A broken invariant: abort so libFuzzer records the input as a crash.
func invariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    guard !condition else { return }
    fputs("invariant violated (\(file):\(line)): \(message())\n", stderr)
    abort()
}

@_cdecl("VoltFuzz_main")
func voltFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = getenv("VOLT_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = targets.first(where: { $0.name == name }) else {
        fputs("set VOLT_FUZZ_TARGET to one of: \(targets.map(\.name).joined(separator: " "))\n", stderr)
        return 2
    }
    selected = target.run
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        selected?(bytes)
        return 0
    }
}

/// Reads fuzzer bytes as little-endian fields; past the end it yields zeros.
struct FuzzInput {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var isEmpty: Bool { position >= bytes.count }
    mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }
    mutating func take(_ n: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, n))
        defer { position = end }
        return Array(bytes[min(position, end)..<end])
    }
}
