import IPC
import VirtioCore
import WorkerCore

/// virtio-rng (virtio 1.2, 5.4): one request queue, no config space, no device
/// features. Its one queue thread is `EntropyQueueHandler`.
final class EntropyDevice: BackendDevice {
    let arguments: EntropyArguments
    let faults: FaultInjector

    init(arguments: EntropyArguments, faults: [FaultSpec]) {
        self.arguments = arguments
        self.faults = FaultInjector(faults)
    }

    var features: UInt64 { VirtioFeature.version1 | VirtioFeature.indirectDescriptors | VirtioFeature.eventIdx }
    /// No CONFIG: the device has no config space.
    var protocolFeatures: UInt64 { .protocolFeatures(.mq, .replyAck) }
    var queueCount: Int { 1 }
    var maxQueueSize: Int { arguments.queueSize }
    var counterNames: [String] { EntropyCounter.names }
    func threadName(_ index: Int) -> String { "rng-q0" }

    func makeHandler(thread index: Int, queues: [Int]) throws -> any QueueThreadHandler {
        EntropyQueueHandler(limiter: RateLimiter(bandwidth: arguments.bandwidth, ops: arguments.ops),
                            faults: faults, maxQueueSize: arguments.queueSize)
    }
}
