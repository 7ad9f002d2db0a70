/// The VM's name on the host (`volt-vmm run --id ID`): names its TAPs (`tap-<id>`), its
/// networkd units (`50-vm-<id>.*`) and seeds its stable MAC addresses. Without `--id`, a
/// random 8-hex-digit id (and random MACs).
public struct VMID: Equatable, CustomStringConvertible {
    /// Firecracker accepts 64 (firecracker-go-sdk passes a UUID, 36). TAP names are cut
    /// to a prefix and a hash, so a long id costs nothing there.
    static let maxLength = 64

    let value: String
    /// True when the operator chose the id: MACs derive from it and stay stable across runs.
    let isGiven: Bool

    public init(given text: String) throws {
        guard Self.isValid(text, maxLength: Self.maxLength) else {
            throw ConfigError.invalidVMID(text)
        }
        value = text
        isGiven = true
    }

    /// A fresh random id of 8 hex digits.
    init<G: RandomNumberGenerator>(randomUsing generator: inout G) {
        let n = UInt32.random(in: .min ... .max, using: &generator)
        let hex = String(n, radix: 16)
        value = String(repeating: "0", count: 8 - hex.count) + hex
        isGiven = false
    }

    public init() {
        var generator = SystemRandomNumberGenerator()
        self.init(randomUsing: &generator)
    }

    public var description: String { value }

    static func isValid(_ text: String, maxLength: Int) -> Bool {
        !text.isEmpty && text.utf8.count <= maxLength && text.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }
}
