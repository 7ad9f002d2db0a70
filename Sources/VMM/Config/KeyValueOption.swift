/// Parses the `key=value,key=value` form of device options (`--disk path=a.img,ro=on`).
/// Keys must be known and unique; values are kept as strings for the caller to check.
struct KeyValueOption {
    let flag: String
    private(set) var values: [String: String] = [:]

    init(flag: String, text: String, allowedKeys: Set<String>) throws {
        self.flag = flag
        guard !text.isEmpty else { throw ConfigError.emptyOption(flag: flag) }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = part.firstIndex(of: "="), eq != part.startIndex else {
                throw ConfigError.notKeyValue(flag: flag, text: text, part: String(part))
            }
            let key = String(part[..<eq])
            let value = String(part[part.index(after: eq)...])
            guard allowedKeys.contains(key) else {
                throw ConfigError.unknownKey(flag: flag, text: text, key: key, allowed: allowedKeys.sorted())
            }
            guard values[key] == nil else { throw ConfigError.repeatedKey(flag: flag, text: text, key: key) }
            values[key] = value
        }
    }

    func string(_ key: String) -> String? { values[key] }

    func required(_ key: String) throws -> String {
        guard let value = values[key], !value.isEmpty else { throw ConfigError.missingValue(flag: flag, key: key) }
        return value
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = values[key] else { return fallback }
        switch value {
        case "on", "true", "yes", "1": return true
        case "off", "false", "no", "0": return false
        default: throw ConfigError.notOnOff(flag: flag, key: key, value: value)
        }
    }

    func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let value = values[key] else { return fallback }
        guard let n = Int(value), range.contains(n) else {
            throw ConfigError.numberOutOfRange(flag: flag, key: key, value: value, range: range)
        }
        return n
    }
}
