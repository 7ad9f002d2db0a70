import ArgumentParser
import FoundationEssentials
import VMM

struct KernelBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a minimal microVM guest kernel (tinyconfig + a fragment) into the kernel store.",
        discussion: """
        Unpacks the source once (cached in <store>/.work), runs `make tinyconfig`,
        merges the fragment, checks that every option of the fragment survived `make
        olddefconfig`, builds vmlinux and bzImage, and stores them with the final
        config and a manifest in <store>/<name>/. The newest build becomes
        <store>/default. An unchanged fragment and source reuse the stored kernel.
        """
    )

    @Option(help: "Linux source tarball.")
    var source = "/usr/src/linux-source-6.1.tar.xz"

    @Option(help: "Kconfig fragment applied on top of tinyconfig.")
    var config = "configs/kernel/microvm-x86_64.config"

    @Option(help: "Kernel store (default: $XDG_CACHE_HOME/volt-vmm/kernels or ~/.cache/volt-vmm/kernels).")
    var store: String?

    @Option(help: "Parallel make jobs (default: number of CPUs).")
    var jobs: Int?

    @Option(help: "Name of the stored kernel (default: <version>-microvm-<hash of fragment and source>).")
    var name: String?

    @Flag(help: "Rebuild even if the store has a kernel from the same fragment and source.")
    var force = false

    @Flag(help: "Only warn when options of the fragment are missing from the final .config.")
    var allowDropped = false

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let name { try KernelStore.validate(name: name) }
    }

    func run() throws {
        let kernelStore = KernelStore(override: store)
        let builder = KernelBuilder(options: .init(
            source: source, fragment: config, store: kernelStore,
            jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount,
            name: name, force: force, allowDropped: allowDropped))
        let started = Date()
        switch try builder.run() {
        case .reused(let entry):
            print("kernel \(entry.name) is up to date (same fragment and source): reusing \(entry.directory)"
                  + " (built \(entry.manifest.buildDate); --force rebuilds)")
        case .built(let entry):
            print("built kernel \(entry.name) (Linux \(entry.manifest.kernelVersion)) in"
                  + " \(BuildProgress.duration(Date().timeIntervalSince(started))): \(entry.directory)")
        }
        print("default -> \(kernelStore.defaultName() ?? "?") in \(kernelStore.root)")
    }
}
