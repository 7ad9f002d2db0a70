import SystemPackage

/// Why a snapshot could not be taken or a snapshot file cannot be restored. Problems with
/// the files are the operator's input (exit 2); the rest are failures at run time.
public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    /// The state file's contents: a field out of range, a count that does not match.
    case invalid(String)
    case notASnapshot(path: String)
    case version(path: String, found: UInt32, supported: UInt32)
    case truncated(path: String, bytes: Int, expected: Int)
    case checksum(path: String)
    case memoryFileSize(path: String, bytes: UInt64, expected: UInt64)
    case hostLacksCPUFeatures(String)
    case file(path: String, operation: String, Errno)
    case notPaused
    case unsupported(String)
    case failed(String)

    public var description: String {
        switch self {
        case let .invalid(why):
            return "snapshot state: \(why) — the file is damaged or was not written by this volt-vmm"
        case let .notASnapshot(path):
            return "\(path): not a volt-vmm snapshot state file (no VOLTSNAP header)"
        case let .version(path, found, supported):
            return "\(path): snapshot format version \(found), this volt-vmm reads version \(supported) — take the snapshot again with this volt-vmm"
        case let .truncated(path, bytes, expected):
            return "\(path): truncated snapshot state (\(bytes) of \(expected) bytes)"
        case let .checksum(path):
            return "\(path): snapshot state checksum mismatch — the file is damaged"
        case let .memoryFileSize(path, bytes, expected):
            return "\(path): memory file of \(bytes) bytes, the snapshot's guest has \(expected) — give the memory file taken with this state file"
        case let .hostLacksCPUFeatures(what):
            return "this host's CPU or KVM lacks what the snapshot's guest was given: \(what) — restore on a host with the same CPU features"
        case let .file(path, operation, errno):
            return "\(path): \(operation) failed: \(errno)"
        case .notPaused:
            return "a snapshot needs a paused VM: PATCH /vm {\"state\": \"Paused\"} first"
        case let .unsupported(why):
            return "cannot snapshot this VM: \(why)"
        case let .failed(why):
            return "snapshot failed: \(why)"
        }
    }
}
