/// JSON text written by hand (no Foundation on this path): string literals and objects
/// from already-encoded values, keys in the order given.
enum JSONText {
    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// `{"k1":v1,"k2":v2}` from encoded values; nil values are left out.
    static func object(_ fields: [(String, String?)]) -> String {
        "{" + fields.compactMap { key, value in value.map { "\(quote(key)):\($0)" } }.joined(separator: ",") + "}"
    }

    /// An encoded value or `null` (Firecracker's GET answers name every field).
    static func orNull(_ value: String?) -> String { value ?? "null" }

    static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }
    static func string(_ s: String?) -> String? { s.map(quote) }
    static func bool(_ b: Bool?) -> String? { b.map { $0 ? "true" : "false" } }
    static func int<T: BinaryInteger>(_ n: T?) -> String? { n.map { "\($0)" } }
}
