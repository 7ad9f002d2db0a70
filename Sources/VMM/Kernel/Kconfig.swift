/// Reading Kconfig files (`.config` and fragments) and checking that a fragment survived
/// `make olddefconfig`.
///
/// Kconfig silently drops an option whose dependencies are not met; volt-vmm treats that as a bug
/// in the fragment and names every such option.
enum KconfigValue: Equatable, CustomStringConvertible {
    /// `# CONFIG_FOO is not set`
    case notSet
    /// `CONFIG_FOO=<raw>`, with quotes kept for strings (`"..."`).
    case value(String)

    var description: String {
        switch self {
        case .notSet: return "not set"
        case .value(let raw): return raw
        }
    }

    /// True when the option is enabled as built-in or module (what "not set" is compared against).
    var isEnabled: Bool {
        switch self {
        case .notSet: return false
        case .value(let raw): return raw == "y" || raw == "m"
        }
    }
}

struct KconfigEntry: Equatable {
    var name: String
    var value: KconfigValue
}

/// One option whose final value differs from what the fragment asked for.
public struct KconfigMismatch: Equatable, CustomStringConvertible {
    var name: String
    var wanted: KconfigValue
    /// nil when the option does not appear in the final .config at all (its menu is disabled).
    var got: KconfigValue?

    public var description: String {
        "\(name) (wanted \(wanted), got \(got?.description ?? "absent"))"
    }
}

enum Kconfig {
    /// Parses a `.config` or a fragment. Blank lines and ordinary comments are skipped; anything
    /// else that is not an assignment or a "not set" comment is an error naming the line.
    /// Later assignments of the same option win, as in merge_config.sh.
    static func parse(_ text: String, path: String = "<config>") throws -> [KconfigEntry] {
        var entries: [KconfigEntry] = []
        var index: [String: Int] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            guard let entry = try parseLine(line, path: path, number: number + 1) else { continue }
            if let at = index[entry.name] {
                entries[at] = entry
            } else {
                index[entry.name] = entries.count
                entries.append(entry)
            }
        }
        return entries
    }

    private static func parseLine(_ line: Substring, path: String, number: Int) throws -> KconfigEntry? {
        if line.isEmpty { return nil }
        if line.hasPrefix("#") {
            // "# CONFIG_FOO is not set" is an assignment; every other comment is prose.
            let body = line.dropFirst().trimmingWhitespace()
            if body.hasPrefix("CONFIG_"), body.hasSuffix(" is not set") {
                let name = body.dropLast(" is not set".count)
                if isSymbol(name) { return KconfigEntry(name: String(name), value: .notSet) }
            }
            return nil
        }
        guard let eq = line.firstIndex(of: "="),
              case let name = line[..<eq], name.hasPrefix("CONFIG_"), isSymbol(name) else {
            throw KernelError.fragmentSyntax(path: path, line: number, text: String(line))
        }
        let value = line[line.index(after: eq)...]
        guard !value.isEmpty else {
            throw KernelError.fragmentSyntax(path: path, line: number, text: String(line))
        }
        return KconfigEntry(name: String(name), value: .value(String(value)))
    }

    private static func isSymbol(_ s: Substring) -> Bool {
        s.count > "CONFIG_".count && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    /// Every fragment option whose value did not make it into the final configuration.
    /// "not set" in the fragment is satisfied by the option being absent or off.
    static func mismatches(fragment: [KconfigEntry], final: [KconfigEntry]) -> [KconfigMismatch] {
        var finalValues: [String: KconfigValue] = [:]
        for entry in final { finalValues[entry.name] = entry.value }
        return fragment.compactMap { wanted in
            let got = finalValues[wanted.name]
            switch wanted.value {
            case .notSet:
                if let got, got.isEnabled { return KconfigMismatch(name: wanted.name, wanted: .notSet, got: got) }
                return nil
            case .value:
                if got == wanted.value { return nil }
                return KconfigMismatch(name: wanted.name, wanted: wanted.value, got: got)
            }
        }
    }

    /// The kernel version from a source tree's top-level Makefile, e.g. "6.1.192" or "6.8.0-rc1".
    static func kernelVersion(makefile text: String) -> String? {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n").prefix(20) {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingWhitespace()
            if ["VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"].contains(key) {
                fields[String(key)] = String(parts[1].trimmingWhitespace())
            }
        }
        guard let v = fields["VERSION"], let p = fields["PATCHLEVEL"], !v.isEmpty, !p.isEmpty,
              v.allSatisfy(\.isNumber), p.allSatisfy(\.isNumber) else { return nil }
        var version = "\(v).\(p)"
        // Same rule as the kernel's own `kernelversion` target: SUBLEVEL only when non-empty.
        if let s = fields["SUBLEVEL"], !s.isEmpty { version += ".\(s)" }
        return version + (fields["EXTRAVERSION"] ?? "")
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        var s = self[...]
        while let first = s.first, first == " " || first == "\t" || first == "\r" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s = s.dropLast() }
        return s
    }
}
