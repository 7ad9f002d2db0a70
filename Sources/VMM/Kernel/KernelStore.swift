import FoundationEssentials
import Glibc

/// The on-disk store of built guest kernels:
///
///     <root>/<name>/vmlinux, bzImage, config, manifest.json
///     <root>/default -> <name>          (symlink to the newest build)
///     <root>/.work/                     (unpacked sources, build trees, build logs)
public struct KernelStore {
    /// Which file of a stored kernel to hand out.
    public enum Image: String, CaseIterable {
        case vmlinux
        case bzImage
    }

    public struct Entry: Equatable {
        public var name: String
        public var directory: String
        public var manifest: KernelManifest
    }

    static let defaultPointer = "default"
    static let storedFiles = ["vmlinux", "bzImage", "config"]

    public let root: String

    init(root: String) { self.root = root }

    /// `--store DIR` if given, else `$XDG_CACHE_HOME/volt-vmm/kernels`, else `~/.cache/volt-vmm/kernels`.
    public init(override: String?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(root: override ?? Self.defaultRoot(environment: environment))
    }

    static func defaultRoot(environment: [String: String]) -> String {
        // The XDG spec says a relative $XDG_CACHE_HOME is invalid and must be ignored.
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return "\(xdg)/volt-vmm/kernels"
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
        return "\(home)/.cache/volt-vmm/kernels"
    }

    var workDirectory: String { "\(root)/.work" }

    public func directory(of name: String) -> String { "\(root)/\(name)" }

    /// A name usable as a directory in the store.
    public static func validate(name: String) throws {
        if name.isEmpty { throw KernelError.invalidName(name, reason: "empty") }
        if name == defaultPointer { throw KernelError.invalidName(name, reason: "'default' is the pointer to the newest build") }
        if name.hasPrefix(".") || name.hasPrefix("-") { throw KernelError.invalidName(name, reason: "must not start with '.' or '-'") }
        let allowed = name.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._+-".unicodeScalars.contains($0)
        }
        if !allowed { throw KernelError.invalidName(name, reason: "only letters, digits, '.', '_', '+' and '-' are allowed") }
    }

    // MARK: Reading

    /// Stored kernels with a readable manifest, newest first. Unreadable entries are skipped
    /// (`kernel list` reports them through `brokenEntries`).
    public func entries() -> [Entry] {
        entryNames().compactMap { try? entry(named: $0) }
            .sorted { ($0.manifest.buildDate, $0.name) > ($1.manifest.buildDate, $1.name) }
    }

    /// Directories in the store that are not readable kernels.
    public func brokenEntries() -> [String] {
        entryNames().filter { (try? entry(named: $0)) == nil }
    }

    private func entryNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { name in
            guard !name.hasPrefix("."), name != Self.defaultPointer else { return false }
            var isDirectory = false
            return FileManager.default.fileExists(atPath: directory(of: name), isDirectory: &isDirectory)
                && isDirectory
        }.sorted()
    }

    func entry(named name: String) throws -> Entry {
        let dir = directory(of: name)
        let manifest = try KernelManifest.load(from: "\(dir)/\(KernelManifest.fileName)")
        return Entry(name: name, directory: dir, manifest: manifest)
    }

    /// The name `default` points to, if it points to an existing entry.
    public func defaultName() -> String? {
        let link = "\(root)/\(Self.defaultPointer)"
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        let name = target.split(separator: "/").last.map(String.init) ?? target
        return FileManager.default.fileExists(atPath: directory(of: name)) ? name : nil
    }

    /// The entry built from exactly this fragment and source, if any (newest first).
    func entry(matching identity: KernelBuildIdentity, name: String? = nil) -> Entry? {
        entries().first { $0.manifest.matches(identity) && (name == nil || $0.name == name) }
    }

    // MARK: Writing

    /// Points `default` at `name`, atomically (a new symlink renamed over the old one).
    func setDefault(_ name: String) throws {
        let link = "\(root)/\(Self.defaultPointer)"
        let temporary = "\(root)/.\(Self.defaultPointer).\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        do {
            try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: name)
        } catch {
            throw KernelError.io(what: "creating symlink", path: temporary, reason: "\(error)")
        }
        guard rename(temporary, link) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw KernelError.io(what: "renaming symlink to", path: link, reason: reason)
        }
    }

    // MARK: Resolving

    /// Resolves what `volt-vmm run --kernel X` was given to a kernel image path.
    ///
    /// 1. An existing file path wins, as given.
    /// 2. Otherwise `X` is a stored kernel name, or `default`, optionally suffixed with
    ///    `:vmlinux` or `:bzImage`; `image` is used when there is no suffix.
    /// An existing directory that holds a stored kernel (e.g. `<store>/<name>`) works too.
    func resolve(_ nameOrPath: String, image: Image = .vmlinux) throws -> String {
        var isDirectory = false
        if FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDirectory) {
            if !isDirectory { return nameOrPath }
            let inside = "\(nameOrPath)/\(image.rawValue)"
            if FileManager.default.fileExists(atPath: "\(nameOrPath)/\(KernelManifest.fileName)") {
                guard FileManager.default.fileExists(atPath: inside) else {
                    throw KernelError.storedFileMissing(entry: nameOrPath, file: image.rawValue)
                }
                return inside
            }
        }

        var name = nameOrPath
        var chosen = image
        if let colon = nameOrPath.lastIndex(of: ":"), !nameOrPath.contains("/") {
            let suffix = String(nameOrPath[nameOrPath.index(after: colon)...])
            guard let picked = Image.allCases.first(where: { $0.rawValue.lowercased() == suffix.lowercased() }) else {
                throw KernelError.unknownImage(spec: nameOrPath, image: suffix)
            }
            chosen = picked
            name = String(nameOrPath[..<colon])
        }

        let notFound = KernelError.kernelNotFound(spec: nameOrPath, store: root, stored: entries().map(\.name))
        // A path-looking argument that does not exist is never a store name.
        if name.contains("/") || name.isEmpty { throw notFound }
        if name == Self.defaultPointer {
            guard let target = defaultName() else { throw notFound }
            name = target
        }
        let dir = directory(of: name)
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory else {
            throw notFound
        }
        let file = "\(dir)/\(chosen.rawValue)"
        guard FileManager.default.fileExists(atPath: file) else {
            throw KernelError.storedFileMissing(entry: name, file: chosen.rawValue)
        }
        return file
    }

    /// `KernelStore.resolve("default", store: nil)`: the entry point for `run --kernel`.
    public static func resolve(_ nameOrPath: String, store: String?, image: Image = .vmlinux) throws -> String {
        try KernelStore(override: store).resolve(nameOrPath, image: image)
    }
}
