import WorkerCore

/// volt-rng-worker's counters (after the framework's kicks, interrupts,
/// errors_broken_ring, resubmitted and faults_injected).
enum EntropyCounter: Int, DeviceCounter {
    /// Requests answered, and the random bytes written into them.
    case requests, bytes
    /// Chains with no device-writable byte (returned with used len 0).
    case errorsMalformedChain
    /// Times the queue waited for the rate limiter's tokens.
    case rateLimited
    /// getrandom(2) failures (the request is answered with what was filled).
    case errorsEntropySource
}
