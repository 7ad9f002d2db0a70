/// Every problem found in a config file, each with its JSON path, so the operator fixes
/// them all in one go: `network[1].mac: "52:54:zz" is not a MAC address`.
public struct ConfigProblems: Error, CustomStringConvertible {
    public let file: String
    public let problems: [String]

    public var description: String {
        let plural = problems.count == 1 ? "problem" : "problems"
        return "\(file): \(problems.count) \(plural):\n" + problems.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// Typed, path-aware reads from a JSON object that record problems instead of stopping
/// at the first one.
final class ConfigReader {
    private(set) var problems: [String] = []

    func problem(_ path: String, _ message: String) {
        problems.append("\(path): \(message)")
    }

    /// The object at `path`, with unknown keys reported. A key set to null is absent (as
    /// Firecracker's optional fields take it, and as its GET /vm/config writes them).
    func object(_ value: JSONValue, _ path: String, allowed: Set<String>) -> [String: JSONValue]? {
        guard case let .object(fields) = value else {
            problem(path, "expected an object, found \(value.kind)")
            return nil
        }
        for key in fields.keys.sorted() where !allowed.contains(key) {
            problem(path.isEmpty ? key : "\(path).\(key)",
                    "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
        return fields.filter { $0.value != .null }
    }

    func string(_ fields: [String: JSONValue], _ key: String, _ path: String) -> String? {
        guard let value = fields[key] else { return nil }
        guard case let .string(s) = value else {
            problem(join(path, key), "expected a string, found \(value.kind)")
            return nil
        }
        return s
    }

    func bool(_ fields: [String: JSONValue], _ key: String, _ path: String) -> Bool? {
        guard let value = fields[key] else { return nil }
        guard case let .bool(b) = value else {
            problem(join(path, key), "expected true or false, found \(value.kind)")
            return nil
        }
        return b
    }

    func int(_ fields: [String: JSONValue], _ key: String, _ path: String, range: ClosedRange<Int>) -> Int? {
        guard let value = fields[key] else { return nil }
        guard case let .number(n) = value, n.rounded() == n, let i = Int(exactly: n) else {
            problem(join(path, key), "expected a whole number, found \(value.kind == "a number" ? "\(value)" : value.kind)")
            return nil
        }
        guard range.contains(i) else {
            problem(join(path, key), "\(i) is out of range (\(range.lowerBound) to \(range.upperBound))")
            return nil
        }
        return i
    }

    func array(_ fields: [String: JSONValue], _ key: String, _ path: String) -> [JSONValue] {
        guard let value = fields[key] else { return [] }
        guard case let .array(items) = value else {
            problem(join(path, key), "expected an array, found \(value.kind)")
            return []
        }
        return items
    }

    private func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}
