import IPC
import VirtioCore
import WorkerCore

// volt-blk-worker: a vhost-user-blk back-end for raw images (one process per disk).
// The process skeleton (conventions, sandbox, signals, exit codes) is WorkerMain's.

enum BlockWorker: WorkerProgram {
    typealias Arguments = BlockArguments
    static let name = "volt-blk-worker"
    /// Capabilities per the vhost-user spec's "vhost-user-blk" back-end conventions.
    static let capabilities = #"{"type": "block", "features": ["read-only", "blk-file"]}"#

    static var usage: String {
        """
        usage: volt-blk-worker (--socket-path PATH | --fd N) (--path IMG | --image-fd N) [options]
               volt-blk-worker --print-capabilities

        vhost-user-blk back-end serving a raw disk image.

          --path IMG           raw image file or block device (aliases: --image, --blk-file)
          --image-fd N         use inherited image fd N (opened by the caller)
          --readonly           read-only disk (alias: --read-only)
          --direct             O_DIRECT I/O (bypass the host page cache)
          --num-queues N       request queues, 1-64 (default 1)
          --queue-size N       largest queue size, power of two 4-1024 (default 1024)
          --serial S           device ID for GET_ID, at most 20 ASCII bytes (default: from the image)
        \(WorkerArguments<BlockArguments>.commonUsage)
        """
    }

    /// The image is opened first: before any sandbox, and before accepting a connection.
    static func makeDevice(_ arguments: WorkerArguments<BlockArguments>) throws -> (any BackendDevice, DeviceSandbox) {
        let a = arguments.device
        var path: String?, fd: CInt?
        switch a.image {
        case let .path(p)?: path = p
        case let .fd(n)?: fd = n
        case nil: throw WorkerError.usage("no disk image (fix: pass --path IMG or --image-fd N)")
        }
        let disk = try DiskImage(path: path, imageFD: fd, readOnly: a.readOnly, direct: a.direct)
        guard disk.capacity > 0 else {
            throw WorkerError.device("the image is smaller than one 512-byte sector: use a larger image")
        }
        var options = BlockDeviceOptions()
        options.queueCount = a.numQueues
        options.maxQueueSize = a.queueSize
        options.serial = a.serial
        options.faults = arguments.faults
        let imageFDs = [disk.fd] + (disk.bufferedFD.map { [$0] } ?? [])
        let sandbox = DeviceSandbox(seccomp: SeccompPolicy.block(imageFDs: imageFDs, readOnly: disk.readOnly),
                                    heldFDs: imageFDs.count, maxFileSize: nil)
        return (BlockDevice(disk: disk, options: options), sandbox)
    }
}

WorkerMain.run(BlockWorker.self)
