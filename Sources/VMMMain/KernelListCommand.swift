import ArgumentParser
import VMM

struct KernelListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the kernels in the kernel store ('*' marks the default)."
    )

    @Option(help: "Kernel store (default: $XDG_CACHE_HOME/volt-vmm/kernels or ~/.cache/volt-vmm/kernels).")
    var store: String?

    func run() throws {
        let kernelStore = KernelStore(override: store)
        let entries = kernelStore.entries()
        for broken in kernelStore.brokenEntries() {
            print("warning: \(kernelStore.directory(of: broken)) has no readable manifest.json; ignored")
        }
        guard !entries.isEmpty else {
            print("no kernels in \(kernelStore.root); run `volt-vmm kernel build`")
            return
        }
        print(KernelListing.table(entries, defaultName: kernelStore.defaultName()))
        print("store: \(kernelStore.root)")
    }
}

enum KernelListing {
    static func table(_ entries: [KernelStore.Entry], defaultName: String?) -> String {
        var rows = [["", "NAME", "VERSION", "VMLINUX", "BZIMAGE", "BUILT"]]
        for entry in entries {
            let m = entry.manifest
            rows.append([
                entry.name == defaultName ? "*" : "",
                entry.name, m.kernelVersion,
                size(m.files["vmlinux"]?.size), size(m.files["bzImage"]?.size),
                m.buildDate,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { cell, width in cell.padding(to: width) }.joined(separator: "  ")
                .trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }

    static func size(_ bytes: UInt64?) -> String {
        guard let bytes else { return "-" }
        if bytes >= 1 << 20 {
            let tenths = (bytes * 10 + (1 << 19)) >> 20
            return "\(tenths / 10).\(tenths % 10) MiB"
        }
        return "\((bytes + 512) >> 10) KiB"
    }
}

private extension String {
    func padding(to width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
