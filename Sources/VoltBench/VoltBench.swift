import ArgumentParser
import Foundation

/// Device benchmarks: each subcommand prints one table with every backend side by side
/// and the ratios the issue sets as targets. See bench/README.md.
@main
struct VoltBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volt-bench",
        abstract: "Device benchmarks: volt-blk-worker and volt-net-worker against qemu-storage-daemon, raw host I/O and a bare TAP; the API's round trip and start; snapshot create and restore.",
        subcommands: [Blk.self, Net.self, Api.self, Snapshot.self])

    struct Blk: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "volt-blk-worker vs qemu-storage-daemon vs raw host preadv/pwritev on one image.")

        @Option(help: "Seconds per cell (row × backend).") var seconds: Double = 2
        @Option(help: "Size of the temporary image in MiB (ignored with --image).") var size: Int = 256
        @Option(help: "Use this raw image instead of a temporary one (its contents are overwritten by the write rows).")
        var image: String?
        @Flag(help: "O_DIRECT for all three backends (page cache bypassed).") var direct = false
        @Option(help: "Only rows whose name contains this text (e.g. QD32).") var rows: String?
        @Option(help: "Split each cell into this many slices, the backends taking turns.") var rounds: Int = 4
        @Option(help: "A/B: another volt-blk-worker binary (e.g. an older build), run as one more backend (\"base\").")
        var vsWorker: String?

        func validate() throws {
            try validateWorker(vsWorker)
            guard seconds > 0, size >= 16, rounds >= 1 else { throw ValidationError("--seconds > 0, --size ≥ 16 and --rounds ≥ 1 please") }
        }

        func run() throws {
            Cleanup.shared.installSignalHandlers()
            defer { Cleanup.shared.runAll() }
            try BlockBench(seconds: seconds, sizeMiB: size, imagePath: image, direct: direct, rowFilter: rows, rounds: rounds,
                           baseWorker: vsWorker).run()
        }
    }

    struct Net: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "volt-net-worker vs a bare TAP read/write loop, in a network namespace it creates and deletes.")

        @Option(help: "Seconds per cell (row × backend).") var seconds: Double = 2
        @Option(help: "Frame lengths in bytes, comma separated (Ethernet header + payload, 60...1514).")
        var frames: String = "64,1500"
        @Flag(help: "Do not ack VIRTIO_NET_F_MRG_RXBUF (one RX buffer per frame).") var noMrgRxbuf = false
        @Flag(help: "Ack VIRTIO_RING_F_EVENT_IDX (as Linux guests do): kicks and calls follow avail_event / used_event.")
        var eventIdx = false
        @Option(help: "Split each cell into this many slices, volt and bare taking turns.") var rounds: Int = 6
        @Option(help: "Pin the far-end peer to this CPU (0 or 1) and the device path to the other.") var peerCpu: Int32?
        @Option(help: "A/B: another volt-net-worker binary (e.g. an older build), run as one more backend (\"base\").")
        var vsWorker: String?

        func validate() throws {
            try validateWorker(vsWorker)
            guard seconds > 0, rounds >= 1 else { throw ValidationError("--seconds > 0 and --rounds ≥ 1 please") }
            if let peerCpu, peerCpu != 0 && peerCpu != 1 { throw ValidationError("--peer-cpu: 0 or 1") }
        }

        func run() throws {
            let sizes = frames.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ (60...1514).contains($0) }) else {
                throw ValidationError("--frames: lengths from 60 to 1514, e.g. 64,1500")
            }
            Cleanup.shared.installSignalHandlers()
            defer { Cleanup.shared.runAll() }
            try NetBench(seconds: seconds, frameSizes: sizes, mergeable: !noMrgRxbuf, eventIdx: eventIdx, rounds: rounds, peerCPU: peerCpu,
                         baseWorker: vsWorker).run()
        }
    }

    struct Api: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Firecracker-compatible API: round trip against a waiting volt-vmm, and exec → guest line configured by API vs by flags.")

        @Option(help: "volt-vmm binary (default: the one next to volt-bench).") var volt: String?
        @Option(help: "The guest to start (prints one line and resets).") var guest = "guests/out/hello.elf"
        @Option(help: "Requests per round-trip row (0: no round-trip rows).") var requests = 10_000
        @Option(help: "Split each round-trip row into this many slices, the rows taking turns.") var rounds = 4
        @Option(help: "Starts of each kind, alternating (0: no start rows).") var runs = 30
        @Option(help: "A,B: volt-bench's requests on CPU A, volt-vmm on CPU B (0,0: the same CPU; 0,1: across CPUs).")
        var cpus: String?

        func validate() throws {
            guard requests >= 0, runs >= 0, rounds >= 1, requests + runs > 0 else {
                throw ValidationError("--requests ≥ 0, --runs ≥ 0 (not both 0) and --rounds ≥ 1 please")
            }
            guard requests == 0 || requests >= rounds else { throw ValidationError("--requests: at least one per round") }
            _ = try pinning()
        }

        func pinning() throws -> (client: Int32, vmm: Int32)? {
            guard let cpus else { return nil }
            let n = Int32(ProcessInfo.processInfo.activeProcessorCount)
            let parts = cpus.split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, parts.allSatisfy({ (0..<n).contains($0) }) else {
                throw ValidationError("--cpus A,B: two CPU numbers from 0 to \(n - 1)")
            }
            return (parts[0], parts[1])
        }

        func run() throws {
            Cleanup.shared.installSignalHandlers()
            defer { Cleanup.shared.runAll() }
            try APIBench(volt: volt ?? executableDirectory() + "/volt-vmm", guest: guest, requests: requests, rounds: rounds,
                         runs: runs, cpus: try pinning()).run()
        }
    }

    struct Snapshot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot create, restore vs cold boot (light and fully touched guests), and many restores of one snapshot at once.")

        @Option(help: "volt-vmm binary (default: the one next to volt-bench).") var volt: String?
        @Option(help: "The guest (counts and checksums memory; counter.touch_mib writes N MiB first).") var guest = "guests/out/counter.elf"
        @Option(help: "Guest memory sizes in MiB, comma separated (each: a light and a fully touched snapshot).")
        var memory = "128,1024"
        @Option(help: "Snapshots created, and starts of each kind (restore, cold boot) per snapshot.") var runs = 10
        @Option(help: "Restores of the first light snapshot started at once (0: none).") var clones = 20

        func sizes() throws -> [Int] {
            let sizes = memory.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ (64...65536).contains($0) }) else {
                throw ValidationError("--memory: sizes in MiB from 64 to 65536, comma separated, e.g. 128,1024")
            }
            return sizes
        }

        func validate() throws {
            _ = try sizes()
            guard runs >= 1, clones >= 0 else { throw ValidationError("--runs ≥ 1 and --clones ≥ 0 please") }
        }

        func run() throws {
            Cleanup.shared.installSignalHandlers()
            defer { Cleanup.shared.runAll() }
            try SnapshotBench(volt: volt ?? executableDirectory() + "/volt-vmm", guest: guest, memories: try sizes(), runs: runs,
                              clones: clones).run()
        }
    }
}

/// `--vs-worker PATH` must name an executable file.
func validateWorker(_ path: String?) throws {
    if let path, access(path, X_OK) != 0 { throw ValidationError("--vs-worker \(path): not an executable file") }
}
