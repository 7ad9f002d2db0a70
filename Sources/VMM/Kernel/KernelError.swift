/// Everything that can go wrong while building, storing or resolving a guest kernel.
///
/// Each case's `description` is one line that names what failed and how to fix it.
public enum KernelError: Error, Equatable, CustomStringConvertible {
    case sourceNotFound(path: String)
    case sourceNotATarball(path: String)
    case fragmentNotFound(path: String)
    case fragmentSyntax(path: String, line: Int, text: String)
    case missingTool(tool: String, package: String)
    case commandFailed(command: String, status: Int32, log: String?)
    case unpackedTreeUnrecognized(path: String)
    case versionUnreadable(makefile: String)
    case optionsDropped([KconfigMismatch], config: String)
    case buildOutputMissing(path: String, log: String)
    case invalidName(String, reason: String)
    case kernelNotFound(spec: String, store: String, stored: [String])
    case unknownImage(spec: String, image: String)
    case storedFileMissing(entry: String, file: String)
    case manifestUnreadable(path: String, reason: String)
    case io(what: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .sourceNotFound(let path):
            return "linux source not found at \(path) — apt-get install linux-source-6.1, or pass --source PATH"
        case .sourceNotATarball(let path):
            return "linux source \(path) is not a .tar.xz/.tar.gz/.tar file — pass the tarball (e.g. /usr/src/linux-source-6.1.tar.xz)"
        case .fragmentNotFound(let path):
            return "kernel config fragment not found at \(path) — run from the volt-vmm checkout or pass --config PATH"
        case .fragmentSyntax(let path, let line, let text):
            return "\(path):\(line): not a Kconfig line: '\(text)' — use CONFIG_NAME=value or '# CONFIG_NAME is not set'"
        case .missingTool(let tool, let package):
            return "'\(tool)' is not installed but is needed to build a kernel — apt-get install \(package)"
        case .commandFailed(let command, let status, let log):
            let where_ = log.map { "; full output in \($0)" } ?? ""
            return "`\(command)` failed with exit status \(status)\(where_)"
        case .unpackedTreeUnrecognized(let path):
            return "no kernel source tree (a directory with a Makefile) found in \(path) — delete it and rebuild"
        case .versionUnreadable(let makefile):
            return "cannot read VERSION/PATCHLEVEL/SUBLEVEL from \(makefile) — is this a Linux source tree?"
        case .optionsDropped(let mismatches, let config):
            let list = mismatches.map(\.description).joined(separator: ", ")
            return "\(mismatches.count) option(s) of the fragment did not end up as asked in \(config): \(list)"
                + " — add their missing dependencies (or turn off what selects them) in the fragment;"
                + " `make menuconfig` and '/' show both; --allow-dropped only warns"
        case .buildOutputMissing(let path, let log):
            return "make succeeded but \(path) is missing; full output in \(log)"
        case .invalidName(let name, let reason):
            return "invalid kernel name '\(name)': \(reason) — pick another --name"
        case .kernelNotFound(let spec, let store, let stored):
            let have = stored.isEmpty ? "the store is empty" : "stored: \(stored.joined(separator: ", "))"
            return "kernel '\(spec)' is neither a file nor a stored kernel in \(store) (\(have))"
                + "; run `volt-vmm kernel build` or `volt-vmm kernel list`"
        case .unknownImage(let spec, let image):
            return "kernel '\(spec)': unknown image '\(image)' — use NAME, NAME:vmlinux or NAME:bzImage"
        case .storedFileMissing(let entry, let file):
            return "stored kernel \(entry) has no \(file) — rebuild it with `volt-vmm kernel build --force`"
        case .manifestUnreadable(let path, let reason):
            return "cannot read kernel manifest \(path): \(reason) — delete that entry or rebuild with --force"
        case .io(let what, let path, let reason):
            return "\(what) \(path) failed: \(reason)"
        }
    }
}
