import VirtioCore
import WorkerCore

/// volt-blk-worker's counters (after the framework's kicks, interrupts,
/// errors_broken_ring, resubmitted and faults_injected), as the VMM's `--metrics` shows them.
enum BlockCounter: Int, DeviceCounter {
    /// Completed requests by type, plus those of an unknown type.
    case requestsRead, requestsWrite, requestsFlush, requestsGetId, requestsDiscard, requestsWriteZeroes, requestsUnknown
    /// Bytes moved between the image and guest memory.
    case bytesRead, bytesWritten
    /// Requests completed with VIRTIO_BLK_S_IOERR / VIRTIO_BLK_S_UNSUPP.
    case errorsIo, errorsUnsupported
    /// Chains that could not be parsed at all (returned with used len 0).
    case errorsMalformedChain
    /// Batches completed (one used.idx publish each).
    case batches

    static func requests(_ type: RequestType?) -> BlockCounter {
        switch type {
        case .in?: return .requestsRead
        case .out?: return .requestsWrite
        case .flush?: return .requestsFlush
        case .getID?: return .requestsGetId
        case .discard?: return .requestsDiscard
        case .writeZeroes?: return .requestsWriteZeroes
        case nil: return .requestsUnknown
        }
    }

    static func errors(_ status: BlockStatus) -> BlockCounter? {
        switch status {
        case .ok: return nil
        case .ioError: return .errorsIo
        case .unsupported: return .errorsUnsupported
        }
    }
}
