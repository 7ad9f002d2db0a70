import CShim
import Glibc
import SystemPackage

/// What of a running machine a snapshot reads; all of it made before the VM ran.
struct SnapshotSource: @unchecked Sendable {
    // @unchecked: read only on the snapshot thread while every vCPU is parked.
    let vm: VirtualMachine
    let vcpus: [VCPU]
    let memory: GuestMemory
    let transports: [VirtioMMIOTransport]
    let serial: Serial8250
    let i8042: I8042
    let cpuid: [[kvm_cpuid_entry2]]
    let devices: Result<[SavedDevice], SnapshotError>
    let deviceIDs: [String?]
    let msrIndices: [UInt32]
    let xsaveSize: Int
    let cmdline: String
    /// Where snapshot files may be written (the Landlock grants); empty: nowhere.
    let directories: [String]
}

/// A full snapshot of a paused machine: the state file and the memory file, each written
/// under a temporary name beside its target and renamed into place once complete (a
/// failure removes them: nothing partial stays). The devices' rings are stopped while
/// memory is copied (nothing in flight) and started again afterwards, so the VM is as it
/// was. Runs on the snapshot thread.
enum SnapshotWriter {
    struct Written: Equatable {
        var memoryBytes: UInt64
        var stateBytes: Int
    }

    /// `clock`: kvmclock as the pause held it. `heldTSC`: host TSC cycles since the vCPUs
    /// parked, taken out of each saved TSC.
    static func write(_ source: SnapshotSource, clock: UInt64, heldTSC: UInt64,
                      statePath: String, memoryPath: String) throws(SnapshotError) -> Written {
        for path in [statePath, memoryPath] { try checkAllowed(path, source.directories) }
        guard statePath != memoryPath else { throw .invalid("snapshot_path and mem_file_path are the same file (\(statePath))") }
        let devices = try source.devices.get()
        var vcpus: [VCPUState] = []
        do {
            for vcpu in source.vcpus {
                var state = try vcpu.captureState(msrIndices: source.msrIndices, xsaveSize: source.xsaveSize)
                if let i = state.msrs.firstIndex(where: { $0.index == VCPUPause.tscMSR }) { state.msrs[i].value &-= heldTSC }
                vcpus.append(state)
            }
        } catch { throw .failed("reading vCPU state: \(error)") }
        var vm: VMState
        do { vm = try source.vm.captureState() } catch { throw .failed("reading the VM's state: \(error)") }
        vm.clock = clock

        // Stop every ring (nothing in flight, nothing written to guest memory) for the copy.
        var stopped: [(VirtioMMIOTransport, [Int: UInt16])] = []
        defer { for (transport, bases) in stopped { try? transport.resume(bases: bases) } }
        var transports: [SavedTransport] = []
        for transport in source.transports {
            do {
                let (state, bases) = try transport.quiesce()
                stopped.append((transport, bases))
                transports.append(SavedTransport(state: state, bases: bases))
            } catch let error as SnapshotError {
                throw error
            } catch {
                throw .failed("\(transport.name): \(error)")
            }
        }
        let state = SnapshotState(vmmVersion: VMController.vmmVersion, memoryBytes: source.memory.size, cmdline: source.cmdline,
                                  devices: devices, deviceIDs: source.deviceIDs, cpuid: source.cpuid.map { $0.map(SavedCPUIDEntry.init) },
                                  xsaveSize: source.xsaveSize, vcpus: vcpus, vm: vm, serial: source.serial.snapshot(),
                                  i8042: source.i8042.snapshot(), transports: transports)
        let encoded = try SnapshotFile.encode(state)

        let memory = try PartialFile(target: memoryPath)
        defer { memory.discard() }
        let stateFile = try PartialFile(target: statePath)
        defer { stateFile.discard() }
        let memoryBytes = try MemoryFile.write(source.memory, to: memory.fd, path: memoryPath)
        try stateFile.write(encoded)
        try memory.commit()
        do { try stateFile.commit() } catch {
            unlink(memoryPath)   // a memory file without its state is not a snapshot
            throw error
        }
        return Written(memoryBytes: memoryBytes, stateBytes: encoded.count)
    }

    /// Snapshot files go only where the operator allowed (`--snapshot-dir`): after its
    /// lock-down volt-vmm can create files nowhere else.
    static func checkAllowed(_ path: String, _ directories: [String]) throws(SnapshotError) {
        guard path.hasPrefix("/") else {
            throw .invalid("\(path): give an absolute path")
        }
        let parts = path.split(separator: "/")
        guard !parts.contains(".."), !parts.contains(".") else { throw .invalid("\(path): no . or .. in snapshot paths") }
        guard directories.contains(where: { dir in path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/") }) else {
            let allowed = directories.isEmpty ? "none was given" : directories.joined(separator: ", ")
            throw .unsupported("\(path) is outside the directories volt-vmm may write snapshots to (\(allowed)) — start volt-vmm with --snapshot-dir DIR")
        }
    }
}

/// A file written under `.NAME.volt-partial` in its target's directory and renamed over
/// the target once complete; removed if it never was.
final class PartialFile {
    let target: String
    let temporary: String
    let fd: Int32
    private var committed = false

    init(target: String) throws(SnapshotError) {
        self.target = target
        let slash = target.lastIndex(of: "/")!
        let dir = target[..<slash], name = target[target.index(after: slash)...]
        guard !name.isEmpty else { throw .invalid("\(target): names a directory, not a file") }
        temporary = "\(dir)/.\(name).volt-partial"
        // The one open the snapshot thread's filter allows: create, write-only, new.
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .file(path: temporary, operation: "create", Errno(rawValue: errno)) }
    }

    func write(_ bytes: [UInt8]) throws(SnapshotError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .file(path: temporary, operation: "write", Errno(rawValue: n < 0 ? errno : EIO)) }
            done += n
        }
        guard fdatasync(fd) == 0 else { throw .file(path: temporary, operation: "fdatasync", Errno(rawValue: errno)) }
    }

    func commit() throws(SnapshotError) {
        guard renameat(AT_FDCWD, temporary, AT_FDCWD, target) == 0 else {
            throw .file(path: target, operation: "rename into place", Errno(rawValue: errno))
        }
        committed = true
    }

    func discard() {
        if !committed { unlink(temporary) }
    }

    deinit { close(fd) }
}
