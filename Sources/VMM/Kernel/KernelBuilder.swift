import FoundationEssentials
import Glibc
import SystemPackage

/// `volt-vmm kernel build`: tinyconfig + fragment, checked, compiled, stored under a name derived
/// from the kernel version and the fragment+source checksums, and reused when nothing changed.
public struct KernelBuilder {
    public struct Options {
        var source: String
        var fragment: String
        var store: KernelStore
        var jobs: Int
        var name: String?
        var force: Bool
        var allowDropped: Bool

        public init(source: String, fragment: String, store: KernelStore, jobs: Int, name: String?, force: Bool, allowDropped: Bool) {
            self.source = source
            self.fragment = fragment
            self.store = store
            self.jobs = jobs
            self.name = name
            self.force = force
            self.allowDropped = allowDropped
        }
    }

    public enum Outcome: Equatable {
        case built(KernelStore.Entry)
        case reused(KernelStore.Entry)
    }

    /// Compile units (CC/AS lines) a build of microvm-x86_64.config on 6.1 prints; the progress
    /// estimate until the store holds a previous build's count.
    static let firstBuildUnitEstimate = 1100
    static let stages = 4

    let options: Options
    let progress: BuildProgress

    public init(options: Options, progress: BuildProgress = BuildProgress()) {
        self.options = options
        self.progress = progress
    }

    public func run() throws -> Outcome {
        let started = Date()
        let source = absolute(options.source)
        let fragment = absolute(options.fragment)
        try checkInputs(source: source, fragment: fragment)
        if let name = options.name { try KernelStore.validate(name: name) }
        let store = options.store

        let fragmentEntries = try Kconfig.parse(try readText(fragment), path: fragment)
        let identity = KernelBuildIdentity(
            fragmentSHA256: try SHA256Sum.file(fragment), sourceSHA256: try SHA256Sum.file(source))
        let identityDigest = try SHA256Sum.string(identity.digestInput)

        if !options.force, let existing = store.entry(matching: identity, name: options.name),
           try isIntact(existing) {
            try store.setDefault(existing.name)
            return .reused(existing)
        }

        try checkBuildTools(source: source)
        try makeDirectory(store.workDirectory)
        let key = String(identityDigest.prefix(16))
        let logPath = "\(store.workDirectory)/build-\(key).log"
        let log: FileDescriptor
        do {
            log = try FileDescriptor.open(
                logPath, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw KernelError.io(what: "creating build log", path: logPath, reason: "\(error)")
        }
        defer { try? log.close() }
        progress.note("full build output: \(logPath)")

        // Stage 1: the unpacked source tree, cached per source checksum.
        let tree = try unpack(source: source, sourceSHA256: identity.sourceSHA256, log: log, logPath: logPath)
        let makefile = "\(tree)/Makefile"
        guard let version = Kconfig.kernelVersion(makefile: try readText(makefile)) else {
            throw KernelError.versionUnreadable(makefile: makefile)
        }
        let name = options.name ?? KernelBuildIdentity.defaultName(version: version, identityDigest: identityDigest)
        try KernelStore.validate(name: name)

        // Stage 2: configure out of tree, so the cached source stays pristine.
        let buildDir = "\(store.workDirectory)/build-\(key)"
        try makeDirectory(buildDir)
        progress.stage(2, of: Self.stages, "configuring: tinyconfig + \(fragment.split(separator: "/").last ?? "")")
        let make = ["-C", tree, "O=\(buildDir)", "ARCH=x86_64"]
        try step("make", make + ["tinyconfig"], log: log, logPath: logPath)
        try step("sh", ["scripts/kconfig/merge_config.sh", "-m", "-O", buildDir, "\(buildDir)/.config", fragment],
                 in: tree, log: log, logPath: logPath)
        try step("make", make + ["olddefconfig"], log: log, logPath: logPath)
        let finalConfig = "\(buildDir)/.config"
        let dropped = Kconfig.mismatches(fragment: fragmentEntries, final: try Kconfig.parse(try readText(finalConfig), path: finalConfig))
        if !dropped.isEmpty {
            let error = KernelError.optionsDropped(dropped, config: finalConfig)
            if !options.allowDropped { throw error }
            progress.warn("\(error)")
        } else {
            progress.note("all \(fragmentEntries.count) options of the fragment are as asked in .config")
        }

        // Stage 3: compile, counting units against the previous build's count.
        let estimate = store.entries().map(\.manifest.compileUnits).filter { $0 > 0 }.first ?? Self.firstBuildUnitEstimate
        progress.stage(3, of: Self.stages, "compiling vmlinux bzImage with -j\(options.jobs)")
        let compileStart = Date()
        var units = 0
        let environment = ProcessInfo.processInfo.environment.merging(
            ["KBUILD_BUILD_USER": "volt-vmm", "KBUILD_BUILD_HOST": "volt-vmm", "LC_ALL": "C"]) { $1 }
        let status = try HostTools.run(
            "make", make + ["-j\(options.jobs)", "vmlinux", "bzImage"], environment: environment, log: log
        ) { line in
            guard let unit = Self.compileUnit(in: line) else { return }
            units += 1
            progress.compiling(units: units, estimate: estimate, current: unit)
        }
        progress.finishCompiling(units: units, seconds: Date().timeIntervalSince(compileStart))
        guard status == 0 else {
            throw KernelError.commandFailed(command: "make -j\(options.jobs) vmlinux bzImage", status: status, log: logPath)
        }

        // Stage 4: store.
        let entryDir = store.directory(of: name)
        progress.stage(4, of: Self.stages, "storing \(entryDir)")
        let outputs = [
            "vmlinux": "\(buildDir)/vmlinux",
            "bzImage": "\(buildDir)/arch/x86/boot/bzImage",
            "config": finalConfig,
        ]
        for (_, path) in outputs where !FileManager.default.fileExists(atPath: path) {
            throw KernelError.buildOutputMissing(path: path, log: logPath)
        }
        let staging = "\(store.root)/.\(name).partial"
        try? FileManager.default.removeItem(atPath: staging)
        try makeDirectory(staging)
        var files: [String: KernelManifest.StoredFile] = [:]
        for (stored, path) in outputs.sorted(by: { $0.key < $1.key }) {
            let destination = "\(staging)/\(stored)"
            do {
                try FileManager.default.copyItem(atPath: path, toPath: destination)
            } catch {
                throw KernelError.io(what: "copying", path: path, reason: "\(error)")
            }
            files[stored] = .init(sha256: try SHA256Sum.file(destination), size: fileSize(destination))
        }
        let manifest = KernelManifest(
            name: name, kernelVersion: version, buildDate: KernelManifest.timestamp(),
            fragmentPath: fragment, fragmentSHA256: identity.fragmentSHA256,
            sourcePath: source, sourceSHA256: identity.sourceSHA256,
            files: files, compileUnits: units, buildSeconds: (Date().timeIntervalSince(started) * 10).rounded() / 10)
        let manifestPath = "\(staging)/\(KernelManifest.fileName)"
        guard FileManager.default.createFile(atPath: manifestPath, contents: try manifest.encoded()) else {
            throw KernelError.io(what: "writing", path: manifestPath, reason: "cannot write")
        }
        try? FileManager.default.removeItem(atPath: entryDir)
        guard rename(staging, entryDir) == 0 else {
            throw KernelError.io(what: "renaming \(staging) to", path: entryDir, reason: String(cString: strerror(errno)))
        }
        try store.setDefault(name)
        return .built(KernelStore.Entry(name: name, directory: entryDir, manifest: manifest))
    }

    /// The object a kbuild progress line compiles, for lines like "  CC      kernel/fork.o" or
    /// "  AS      arch/x86/entry/entry_64.o". Host tools, links and generated files are not counted.
    static func compileUnit(in line: Substring) -> Substring? {
        guard line.hasPrefix("  ") else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, fields[0] == "CC" || fields[0] == "AS" else { return nil }
        return fields[fields.count - 1]
    }

    // MARK: Steps

    private func checkInputs(source: String, fragment: String) throws {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw KernelError.sourceNotFound(path: source)
        }
        let tarball = [".tar.xz", ".tar.gz", ".tgz", ".tar"].contains { source.hasSuffix($0) }
        if isDirectory || !tarball { throw KernelError.sourceNotATarball(path: source) }
        guard FileManager.default.fileExists(atPath: fragment) else {
            throw KernelError.fragmentNotFound(path: fragment)
        }
    }

    /// What `make` needs; checked only when a build is needed (reuse needs just sha256sum).
    private func checkBuildTools(source: String) throws {
        var tools = ["make", "gcc", "tar", "flex", "bison", "bc", "perl", "lz4"]
        if source.hasSuffix(".xz") { tools.append("xz") }
        for tool in tools { _ = try HostTools.require(tool) }
        // objtool and the module signing tools include these headers.
        for (header, package) in [("/usr/include/gelf.h", "libelf-dev"), ("/usr/include/openssl/ssl.h", "libssl-dev")]
        where !FileManager.default.fileExists(atPath: header) {
            throw KernelError.missingTool(tool: header, package: package)
        }
    }

    /// Unpacks the tarball once into `.work/src-<sha>` and returns the tree inside it.
    private func unpack(source: String, sourceSHA256: String, log: FileDescriptor, logPath: String) throws -> String {
        let cache = "\(options.store.workDirectory)/src-\(sourceSHA256.prefix(16))"
        let marker = "\(cache)/.volt-unpacked"
        if let treeName = FileManager.default.contents(atPath: marker).map({ String(decoding: $0, as: UTF8.self) }),
           !treeName.isEmpty, FileManager.default.fileExists(atPath: "\(cache)/\(treeName)/Makefile") {
            progress.stage(1, of: Self.stages, "reusing unpacked source \(cache)/\(treeName)")
            return "\(cache)/\(treeName)"
        }
        progress.stage(1, of: Self.stages, "unpacking \(source) (once; cached in \(cache))")
        let partial = cache + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        try? FileManager.default.removeItem(atPath: cache)
        try makeDirectory(partial)
        try step("tar", ["-xf", source, "-C", partial], log: log, logPath: logPath)
        let top = (try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? []
        guard let treeName = top.first(where: { FileManager.default.fileExists(atPath: "\(partial)/\($0)/Makefile") }) else {
            throw KernelError.unpackedTreeUnrecognized(path: partial)
        }
        _ = FileManager.default.createFile(atPath: "\(partial)/.volt-unpacked", contents: Data(treeName.utf8))
        guard rename(partial, cache) == 0 else {
            throw KernelError.io(what: "renaming \(partial) to", path: cache, reason: String(cString: strerror(errno)))
        }
        return "\(cache)/\(treeName)"
    }

    private func step(_ tool: String, _ arguments: [String], in directory: String? = nil, log: FileDescriptor, logPath: String) throws {
        let status = try HostTools.run(tool, arguments, in: directory, log: log)
        guard status == 0 else {
            throw KernelError.commandFailed(command: ([tool] + arguments).joined(separator: " "), status: status, log: logPath)
        }
    }

    /// A stored entry is reused only if its files are still there and unchanged.
    private func isIntact(_ entry: KernelStore.Entry) throws -> Bool {
        for file in KernelStore.storedFiles {
            guard let recorded = entry.manifest.files[file] else { return false }
            let path = "\(entry.directory)/\(file)"
            guard FileManager.default.fileExists(atPath: path), try SHA256Sum.file(path) == recorded.sha256 else {
                progress.warn("stored kernel \(entry.name): \(file) is missing or changed; rebuilding")
                return false
            }
        }
        return true
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    private func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelError.io(what: "reading", path: path, reason: "missing or unreadable")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw KernelError.io(what: "creating directory", path: path, reason: "\(error)")
        }
    }

    private func fileSize(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(max(0, info.st_size)) : 0
    }
}
