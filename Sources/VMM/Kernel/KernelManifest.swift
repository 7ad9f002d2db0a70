import FoundationEssentials

/// `<store>/<name>/manifest.json`: what was built, from what, and the checksum of each stored file.
public struct KernelManifest: Codable, Equatable {
    public struct StoredFile: Codable, Equatable {
        var sha256: String
        public var size: UInt64
    }

    var name: String
    public var kernelVersion: String
    /// ISO 8601, UTC, e.g. "2026-11-24T09:41:07Z".
    public var buildDate: String
    var fragmentPath: String
    var fragmentSHA256: String
    var sourcePath: String
    var sourceSHA256: String
    /// Keyed by stored file name: "vmlinux", "bzImage", "config".
    public var files: [String: StoredFile]
    /// Compile units (CC/AS lines) the build printed: the progress estimate for the next build.
    var compileUnits: Int
    var buildSeconds: Double

    enum CodingKeys: String, CodingKey {
        case name
        case kernelVersion = "kernel_version"
        case buildDate = "build_date"
        case fragmentPath = "fragment_path"
        case fragmentSHA256 = "fragment_sha256"
        case sourcePath = "source_path"
        case sourceSHA256 = "source_sha256"
        case files
        case compileUnits = "compile_units"
        case buildSeconds = "build_seconds"
    }

    static let fileName = "manifest.json"

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    static func decode(_ data: Data, path: String) throws -> KernelManifest {
        do {
            return try JSONDecoder().decode(KernelManifest.self, from: data)
        } catch {
            throw KernelError.manifestUnreadable(path: path, reason: "\(error)")
        }
    }

    static func load(from path: String) throws -> KernelManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelError.manifestUnreadable(path: path, reason: "missing or unreadable")
        }
        return try decode(data, path: path)
    }

    /// True when this entry was built from exactly this fragment and source.
    func matches(_ identity: KernelBuildIdentity) -> Bool {
        fragmentSHA256 == identity.fragmentSHA256 && sourceSHA256 == identity.sourceSHA256
    }

    static func timestamp(_ date: Date = Date()) -> String {
        // The default style: UTC, "yyyy-MM-ddTHH:mm:ssZ".
        Date.ISO8601FormatStyle().format(date)
    }
}

/// What makes two builds the same: the fragment's and the source tarball's checksums.
struct KernelBuildIdentity: Equatable {
    var fragmentSHA256: String
    var sourceSHA256: String

    /// The text whose SHA-256 gives the short hash in default names.
    var digestInput: String { "fragment \(fragmentSHA256)\nsource \(sourceSHA256)\n" }

    /// `<version>-microvm-<first 8 hex of sha256(digestInput)>`, e.g. "6.1.192-microvm-3f2a9c01".
    static func defaultName(version: String, identityDigest: String) -> String {
        "\(version)-microvm-\(identityDigest.prefix(8))"
    }

    func defaultName(version: String) throws -> String {
        Self.defaultName(version: version, identityDigest: try SHA256Sum.string(digestInput))
    }
}
