import Foundation
import Testing
@testable import VMM
@testable import VMMMain

/// A throwaway kernel store with entries made of dummy files: no real kernel build needed.
private final class TemporaryStore {
    let root: String
    let store: KernelStore

    init() throws {
        root = FileManager.default.temporaryDirectory.path + "/volt-kernel-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        store = KernelStore(root: root)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    @discardableResult
    func addEntry(_ name: String, date: String = "2026-11-24T09:00:00Z", files: [String] = ["vmlinux", "bzImage", "config"]) throws -> KernelManifest {
        let dir = store.directory(of: name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var stored: [String: KernelManifest.StoredFile] = [:]
        for file in files {
            _ = FileManager.default.createFile(atPath: "\(dir)/\(file)", contents: Data("\(name) \(file)".utf8))
            stored[file] = .init(sha256: String(repeating: "0", count: 64), size: 7 << 20)
        }
        let manifest = KernelManifest.sample(name: name, date: date, files: stored)
        _ = FileManager.default.createFile(atPath: "\(dir)/manifest.json", contents: try manifest.encoded())
        return manifest
    }
}

extension KernelManifest {
    static func sample(name: String, date: String = "2026-11-24T09:00:00Z", files: [String: StoredFile] = [:]) -> KernelManifest {
        KernelManifest(
            name: name, kernelVersion: "6.1.192", buildDate: date,
            fragmentPath: "/src/configs/kernel/microvm-x86_64.config", fragmentSHA256: String(repeating: "a", count: 64),
            sourcePath: "/usr/src/linux-source-6.1.tar.xz", sourceSHA256: String(repeating: "b", count: 64),
            files: files, compileUnits: 1042, buildSeconds: 183.4)
    }
}

@Suite struct KernelNamingTests {
    @Test func defaultNameIsVersionFlavorAndShortHash() {
        let digest = "3f2a9c01" + String(repeating: "e", count: 56)
        #expect(KernelBuildIdentity.defaultName(version: "6.1.192", identityDigest: digest) == "6.1.192-microvm-3f2a9c01")
    }

    @Test func sha256ComesFromCoreutils() throws {
        #expect(try SHA256Sum.string("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func nameChangesWithFragmentOrSource() throws {
        let base = KernelBuildIdentity(fragmentSHA256: "aa", sourceSHA256: "bb")
        let name = try base.defaultName(version: "6.1.192")
        #expect(name.hasPrefix("6.1.192-microvm-"))
        #expect(name.count == "6.1.192-microvm-".count + 8)
        #expect(try base.defaultName(version: "6.1.192") == name)
        #expect(try KernelBuildIdentity(fragmentSHA256: "ab", sourceSHA256: "bb").defaultName(version: "6.1.192") != name)
        #expect(try KernelBuildIdentity(fragmentSHA256: "aa", sourceSHA256: "bc").defaultName(version: "6.1.192") != name)
    }

    @Test(arguments: [
        ("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = Curry Ramen\n", "6.1.192"),
        ("# SPDX\nVERSION = 6\nPATCHLEVEL = 8\nSUBLEVEL = 0\nEXTRAVERSION = -rc1\n", "6.8.0-rc1"),
        ("VERSION = 6\nPATCHLEVEL = 1\n", "6.1"),
    ])
    func versionFromMakefile(makefile: String, version: String) {
        #expect(Kconfig.kernelVersion(makefile: makefile) == version)
    }

    @Test func versionNeedsVersionAndPatchlevel() {
        #expect(Kconfig.kernelVersion(makefile: "all:\n\techo hi\n") == nil)
    }

    @Test(arguments: ["6.1.192-microvm-3f2a9c01", "my_kernel+dbg", "a"])
    func validNames(name: String) throws {
        try KernelStore.validate(name: name)
    }

    @Test(arguments: ["", "default", ".work", "-x", "a/b", "a b", "..", "ä"])
    func invalidNames(name: String) {
        #expect(throws: KernelError.self) { try KernelStore.validate(name: name) }
    }

    @Test func storeLocationFollowsXDG() {
        #expect(KernelStore.defaultRoot(environment: ["HOME": "/home/u"]) == "/home/u/.cache/volt-vmm/kernels")
        #expect(KernelStore.defaultRoot(environment: ["HOME": "/home/u", "XDG_CACHE_HOME": "/c"]) == "/c/volt-vmm/kernels")
        // A relative XDG_CACHE_HOME is invalid per the spec and ignored.
        #expect(KernelStore.defaultRoot(environment: ["HOME": "/home/u", "XDG_CACHE_HOME": "rel"]) == "/home/u/.cache/volt-vmm/kernels")
        #expect(KernelStore(override: "/s", environment: ["HOME": "/home/u"]).root == "/s")
    }
}

@Suite struct KernelManifestTests {
    @Test func roundTrips() throws {
        let manifest = KernelManifest.sample(name: "k1", files: [
            "vmlinux": .init(sha256: String(repeating: "1", count: 64), size: 18_000_000),
            "bzImage": .init(sha256: String(repeating: "2", count: 64), size: 3_000_000),
        ])
        let data = try manifest.encoded()
        #expect(try KernelManifest.decode(data, path: "m.json") == manifest)
        let json = String(decoding: data, as: UTF8.self)
        for key in ["\"kernel_version\"", "\"build_date\"", "\"fragment_sha256\"", "\"source_sha256\"", "\"sha256\""] {
            #expect(json.contains(key))
        }
    }

    @Test func garbageIsAnErrorNamingTheFile() {
        #expect(throws: KernelError.self) { try KernelManifest.decode(Data("{".utf8), path: "/s/k/manifest.json") }
        do {
            _ = try KernelManifest.decode(Data("{}".utf8), path: "/s/k/manifest.json")
            Issue.record("decoded an empty manifest")
        } catch {
            #expect("\(error)".contains("/s/k/manifest.json"))
        }
    }

    @Test func matchesOnFragmentAndSource() {
        let manifest = KernelManifest.sample(name: "k")
        #expect(manifest.matches(.init(fragmentSHA256: manifest.fragmentSHA256, sourceSHA256: manifest.sourceSHA256)))
        #expect(!manifest.matches(.init(fragmentSHA256: manifest.fragmentSHA256, sourceSHA256: "c")))
        #expect(!manifest.matches(.init(fragmentSHA256: "c", sourceSHA256: manifest.sourceSHA256)))
    }

    @Test func timestampIsUTC() {
        #expect(KernelManifest.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    }
}

@Suite struct KernelResolveTests {
    @Test func existingFileWins() throws {
        let tmp = try TemporaryStore()
        let file = "\(tmp.root)/custom-vmlinux"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(try tmp.store.resolve(file) == file)
        #expect(try tmp.store.resolve(file, image: .bzImage) == file)
    }

    @Test func fileNamedLikeAnEntryWinsOverTheEntry() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1")
        let cwdFile = "\(tmp.root)/k1/vmlinux"
        #expect(try tmp.store.resolve(cwdFile) == cwdFile)
    }

    @Test func storedNameResolvesToVmlinuxOrBzImage() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("6.1.192-microvm-3f2a9c01")
        #expect(try tmp.store.resolve("6.1.192-microvm-3f2a9c01") == "\(tmp.root)/6.1.192-microvm-3f2a9c01/vmlinux")
        #expect(try tmp.store.resolve("6.1.192-microvm-3f2a9c01:bzImage") == "\(tmp.root)/6.1.192-microvm-3f2a9c01/bzImage")
        #expect(try tmp.store.resolve("6.1.192-microvm-3f2a9c01", image: .bzImage) == "\(tmp.root)/6.1.192-microvm-3f2a9c01/bzImage")
        #expect(try tmp.store.resolve("6.1.192-microvm-3f2a9c01:vmlinux", image: .bzImage) == "\(tmp.root)/6.1.192-microvm-3f2a9c01/vmlinux")
    }

    @Test func entryDirectoryResolvesToItsImage() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1")
        #expect(try tmp.store.resolve("\(tmp.root)/k1") == "\(tmp.root)/k1/vmlinux")
    }

    @Test func defaultFollowsThePointer() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("old")
        try tmp.addEntry("new")
        try tmp.store.setDefault("old")
        try tmp.store.setDefault("new")
        #expect(tmp.store.defaultName() == "new")
        #expect(try tmp.store.resolve("default") == "\(tmp.root)/new/vmlinux")
        #expect(try tmp.store.resolve("default:bzImage") == "\(tmp.root)/new/bzImage")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(tmp.root)/default")
        #expect(link == "new", "the pointer is relative so the store can move")
    }

    @Test func missingNameSaysWhatWasTriedAndTheFix() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1")
        do {
            _ = try tmp.store.resolve("foo")
            Issue.record("resolved a missing kernel")
        } catch {
            let text = "\(error)"
            #expect(text.contains("kernel 'foo' is neither a file nor a stored kernel in \(tmp.root)"))
            #expect(text.contains("stored: k1"))
            #expect(text.contains("volt-vmm kernel build"))
            #expect(text.contains("volt-vmm kernel list"))
            #expect(!text.contains("\n"))
        }
    }

    @Test func missingPathAndEmptyStoreAndNoDefaultAreErrors() throws {
        let tmp = try TemporaryStore()
        #expect(throws: KernelError.kernelNotFound(spec: "/no/such/vmlinux", store: tmp.root, stored: [])) {
            try tmp.store.resolve("/no/such/vmlinux")
        }
        #expect(throws: KernelError.kernelNotFound(spec: "default", store: tmp.root, stored: [])) {
            try tmp.store.resolve("default")
        }
        #expect(throws: KernelError.kernelNotFound(spec: "x", store: "\(tmp.root)/absent", stored: [])) {
            try KernelStore(root: "\(tmp.root)/absent").resolve("x")
        }
    }

    @Test func unknownImageSuffixAndMissingFile() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1", files: ["vmlinux", "config"])
        #expect(throws: KernelError.unknownImage(spec: "k1:zImage", image: "zImage")) { try tmp.store.resolve("k1:zImage") }
        #expect(throws: KernelError.storedFileMissing(entry: "k1", file: "bzImage")) { try tmp.store.resolve("k1:bzImage") }
    }

    @Test func staticEntryPointUsesTheGivenStore() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1")
        try tmp.store.setDefault("k1")
        #expect(try KernelStore.resolve("default", store: tmp.root) == "\(tmp.root)/k1/vmlinux")
    }

    @Test func entriesAreNewestFirstAndSkipBrokenOnes() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("a", date: "2026-11-01T00:00:00Z")
        try tmp.addEntry("b", date: "2026-11-20T00:00:00Z")
        try FileManager.default.createDirectory(atPath: "\(tmp.root)/broken", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(tmp.root)/.work", withIntermediateDirectories: true)
        try tmp.store.setDefault("a")
        #expect(tmp.store.entries().map(\.name) == ["b", "a"])
        #expect(tmp.store.brokenEntries() == ["broken"])
        let identity = KernelBuildIdentity(fragmentSHA256: String(repeating: "a", count: 64), sourceSHA256: String(repeating: "b", count: 64))
        #expect(tmp.store.entry(matching: identity)?.name == "b")
        #expect(tmp.store.entry(matching: identity, name: "a")?.name == "a")
        #expect(tmp.store.entry(matching: .init(fragmentSHA256: "x", sourceSHA256: "y")) == nil)
    }

    @Test func listingMarksTheDefault() throws {
        let tmp = try TemporaryStore()
        try tmp.addEntry("k1")
        try tmp.addEntry("k22", date: "2026-11-25T00:00:00Z")
        let table = KernelListing.table(tmp.store.entries(), defaultName: "k1")
        let lines = table.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("   NAME"))
        #expect(lines[1].hasPrefix("   k22   6.1.192  7.0 MiB  7.0 MiB  2026-11-25"))
        #expect(lines[2].hasPrefix("*  k1    6.1.192  7.0 MiB"))
        #expect(KernelListing.size(1536) == "2 KiB")
        #expect(KernelListing.size(nil) == "-")
    }
}

@Suite struct KconfigTests {
    @Test func parsesAssignmentsNotSetAndComments() throws {
        let text = """
        # --- a comment
        CONFIG_SMP=y
          CONFIG_NR_CPUS=64
        # CONFIG_KERNEL_XZ is not set
        CONFIG_CMDLINE="console=ttyS0"

        CONFIG_SMP=m
        """
        let entries = try Kconfig.parse(text)
        #expect(entries == [
            .init(name: "CONFIG_SMP", value: .value("m")),
            .init(name: "CONFIG_NR_CPUS", value: .value("64")),
            .init(name: "CONFIG_KERNEL_XZ", value: .notSet),
            .init(name: "CONFIG_CMDLINE", value: .value("\"console=ttyS0\"")),
        ])
    }

    @Test(arguments: ["SMP=y", "CONFIG_SMP", "CONFIG_SMP=", "CONFIG_=y", "CONFIG-SMP=y"])
    func rejectsMalformedLines(line: String) {
        #expect(throws: KernelError.fragmentSyntax(path: "frag", line: 2, text: line)) {
            try Kconfig.parse("CONFIG_OK=y\n\(line)\n", path: "frag")
        }
    }

    @Test func droppedAndChangedOptionsAreReported() throws {
        let fragment = try Kconfig.parse("""
        CONFIG_SMP=y
        CONFIG_NR_CPUS=64
        CONFIG_VIRTIO_BLK=y
        CONFIG_EXT4_FS=y
        CONFIG_PVH=y
        # CONFIG_KERNEL_XZ is not set
        # CONFIG_MODULES is not set
        """)
        // A synthetic olddefconfig result: VIRTIO_BLK's menu was off (absent), EXT4 became a
        // module, NR_CPUS was clamped, XZ stayed on, MODULES is absent (fine for "not set").
        let final = try Kconfig.parse("""
        CONFIG_SMP=y
        CONFIG_NR_CPUS=8
        CONFIG_EXT4_FS=m
        # CONFIG_PVH is not set
        CONFIG_KERNEL_XZ=y
        """)
        let mismatches = Kconfig.mismatches(fragment: fragment, final: final)
        #expect(mismatches == [
            .init(name: "CONFIG_NR_CPUS", wanted: .value("64"), got: .value("8")),
            .init(name: "CONFIG_VIRTIO_BLK", wanted: .value("y"), got: nil),
            .init(name: "CONFIG_EXT4_FS", wanted: .value("y"), got: .value("m")),
            .init(name: "CONFIG_PVH", wanted: .value("y"), got: .notSet),
            .init(name: "CONFIG_KERNEL_XZ", wanted: .notSet, got: .value("y")),
        ])
        let message = KernelError.optionsDropped(mismatches, config: "/b/.config").description
        #expect(message.contains("5 option(s)"))
        #expect(message.contains("CONFIG_VIRTIO_BLK (wanted y, got absent)"))
        #expect(message.contains("CONFIG_PVH (wanted y, got not set)"))
    }

    @Test func survivingFragmentHasNoMismatches() throws {
        let fragment = try Kconfig.parse("CONFIG_SMP=y\n# CONFIG_KERNEL_XZ is not set\n")
        let final = try Kconfig.parse("CONFIG_SMP=y\n# CONFIG_KERNEL_XZ is not set\nCONFIG_OTHER=y\n")
        #expect(Kconfig.mismatches(fragment: fragment, final: final).isEmpty)
    }

    /// The shipped fragment parses and asks for everything the microVM guest depends on.
    @Test func shippedFragmentHasTheGuestEssentials() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = repo.appendingPathComponent("configs/kernel/microvm-x86_64.config").path
        let text = try #require(FileManager.default.contents(atPath: path))
        let entries = try Kconfig.parse(String(decoding: text, as: UTF8.self), path: path)
        let enabled = Set(entries.filter { $0.value == .value("y") }.map(\.name))
        for option in [
            "64BIT", "SMP", "X86_MPPARSE", "PRINTK", "EARLY_PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE",
            "BLK_DEV_INITRD", "RD_GZIP", "BINFMT_ELF", "BINFMT_SCRIPT", "PROC_FS", "SYSFS", "DEVTMPFS",
            "DEVTMPFS_MOUNT", "TMPFS", "FUTEX", "EPOLL", "MULTIUSER", "POSIX_TIMERS", "HYPERVISOR_GUEST",
            "PARAVIRT", "KVM_GUEST", "PVH", "X86_X2APIC", "VIRTIO", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES",
            "VIRTIO_BLK", "BLOCK", "NET", "INET", "UNIX", "PACKET", "NETDEVICES", "NET_CORE", "VIRTIO_NET",
            "EXT4_FS", "IP_PNP",
        ] {
            #expect(enabled.contains("CONFIG_\(option)"), "fragment lacks CONFIG_\(option)=y")
        }
        #expect(entries.contains(.init(name: "CONFIG_NR_CPUS", value: .value("64"))))
    }
}

@Suite struct KernelBuildProgressTests {
    @Test(arguments: [
        ("  CC      kernel/fork.o", "kernel/fork.o"),
        ("  AS      arch/x86/entry/entry_64.o", "arch/x86/entry/entry_64.o"),
        ("  CC [M]  drivers/foo.o", "drivers/foo.o"),
    ])
    func countsCompileLines(line: String, unit: String) {
        #expect(KernelBuilder.compileUnit(in: line[...]) == unit[...])
    }

    @Test(arguments: [
        "  HOSTCC  scripts/basic/fixdep", "  LD      vmlinux", "  AR      lib/lib.a", "CC kernel/fork.o",
        "make[1]: Entering directory", "  GEN     Makefile", "",
    ])
    func ignoresOtherLines(line: String) {
        #expect(KernelBuilder.compileUnit(in: line[...]) == nil)
    }

    @Test func durations() {
        #expect(BuildProgress.duration(42.4) == "42s")
        #expect(BuildProgress.duration(183) == "3m03s")
    }
}

/// The parts of `kernel build` that run without compiling a kernel: input checks and reuse.
@Suite struct KernelBuilderReuseTests {
    private func setUp(_ tmp: TemporaryStore) throws -> (source: String, fragment: String, identity: KernelBuildIdentity) {
        let source = "\(tmp.root)/linux-fake.tar.xz"
        let fragment = "\(tmp.root)/frag.config"
        _ = FileManager.default.createFile(atPath: source, contents: Data("not really a tarball".utf8))
        _ = FileManager.default.createFile(atPath: fragment, contents: Data("CONFIG_SMP=y\n".utf8))
        let identity = KernelBuildIdentity(fragmentSHA256: try SHA256Sum.file(fragment), sourceSHA256: try SHA256Sum.file(source))
        return (source, fragment, identity)
    }

    /// Stores an entry whose manifest matches `identity` and the real checksums of its files.
    private func storeMatchingEntry(_ tmp: TemporaryStore, name: String, identity: KernelBuildIdentity) throws {
        try tmp.addEntry(name)
        let dir = tmp.store.directory(of: name)
        var manifest = try tmp.store.entry(named: name).manifest
        manifest.fragmentSHA256 = identity.fragmentSHA256
        manifest.sourceSHA256 = identity.sourceSHA256
        for file in KernelStore.storedFiles {
            manifest.files[file] = .init(sha256: try SHA256Sum.file("\(dir)/\(file)"), size: 1)
        }
        _ = FileManager.default.createFile(atPath: "\(dir)/manifest.json", contents: try manifest.encoded())
    }

    private func options(_ tmp: TemporaryStore, source: String, fragment: String, force: Bool = false) -> KernelBuilder.Options {
        .init(source: source, fragment: fragment, store: tmp.store, jobs: 1, name: nil, force: force, allowDropped: false)
    }

    @Test func unchangedFragmentAndSourceReuseTheStoredKernel() throws {
        let tmp = try TemporaryStore()
        let (source, fragment, identity) = try setUp(tmp)
        try storeMatchingEntry(tmp, name: "6.1.192-microvm-00000000", identity: identity)
        try tmp.addEntry("other")
        try tmp.store.setDefault("other")
        let outcome = try KernelBuilder(options: options(tmp, source: source, fragment: fragment),
                                        progress: BuildProgress(interactive: false)).run()
        guard case .reused(let entry) = outcome else {
            Issue.record("expected reuse, got \(outcome)")
            return
        }
        #expect(entry.name == "6.1.192-microvm-00000000")
        #expect(tmp.store.defaultName() == "6.1.192-microvm-00000000")
    }

    @Test func aChangedStoredFileOrForceMeansRebuildingAndFailuresNameTheLog() throws {
        let tmp = try TemporaryStore()
        let (source, fragment, identity) = try setUp(tmp)
        try storeMatchingEntry(tmp, name: "k", identity: identity)
        _ = FileManager.default.createFile(atPath: "\(tmp.root)/k/vmlinux", contents: Data("tampered".utf8))
        for force in [false, true] {
            // The fake tarball cannot be unpacked, so the rebuild fails at stage 1 and says where the log is.
            do {
                _ = try KernelBuilder(options: options(tmp, source: source, fragment: fragment, force: force),
                                      progress: BuildProgress(interactive: false)).run()
                Issue.record("built from a fake tarball")
            } catch KernelError.commandFailed(let command, _, let log) {
                #expect(command.hasPrefix("tar -xf"))
                #expect(log?.hasPrefix("\(tmp.root)/.work/build-") == true)
            } catch KernelError.missingTool {
                // A host without the kernel build tools stops one step earlier; also fine.
            }
        }
    }

    @Test func missingOrWrongInputsAreOneLineErrors() throws {
        let tmp = try TemporaryStore()
        let (source, fragment, _) = try setUp(tmp)
        let builder = { (source: String, fragment: String) in
            KernelBuilder(options: self.options(tmp, source: source, fragment: fragment), progress: BuildProgress(interactive: false))
        }
        #expect(throws: KernelError.sourceNotFound(path: "/no/linux.tar.xz")) { try builder("/no/linux.tar.xz", fragment).run() }
        #expect(throws: KernelError.sourceNotATarball(path: tmp.root)) { try builder(tmp.root, fragment).run() }
        #expect(throws: KernelError.fragmentNotFound(path: "/no/frag.config")) { try builder(source, "/no/frag.config").run() }
        #expect(KernelError.sourceNotFound(path: "/usr/src/linux-source-6.1.tar.xz").description
                == "linux source not found at /usr/src/linux-source-6.1.tar.xz — apt-get install linux-source-6.1, or pass --source PATH")
    }
}
