// swift-tools-version:6.0
import PackageDescription

var package = Package(
    name: "volt-vmm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "volt-vmm", targets: ["VMMMain"]),
        .executable(name: "volt-blk-worker", targets: ["BlockWorker"]),
        .executable(name: "volt-net-worker", targets: ["NetWorker"]),
        .executable(name: "volt-rng-worker", targets: ["EntropyWorker"]),
        .executable(name: "volt-vsock-worker", targets: ["VsockWorker"]),
        .executable(name: "volt-bench", targets: ["VoltBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // Only what Swift cannot import: ioctl request macros, variadic syscalls, CMSG.
        .target(name: "CShim"),
        // libseccomp and libcap (apt: libseccomp-dev, libcap-dev), for the workers' sandbox.
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // libhttp-parser 2.9.4 (apt: libhttp-parser-dev) frames the API's HTTP/1.1. No .pc
        // file ships with it, so the modulemap links it by name: its static archive
        // (no runtime dependency on libhttp-parser2.9).
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        // HTTP/1.1 over a Unix socket for the Firecracker-compatible API: server (one
        // poll(2) loop, no files or sockets created once it runs) and a tiny client.
        // Knows nothing about the VMM.
        .target(
            name: "APIServer",
            dependencies: ["CHTTPParser", "CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Jails a worker before its first vhost-user message: rlimits, namespaces, empty
        // root, no capabilities, no_new_privs, Landlock, seccomp (common + vhost-user base).
        .target(name: "Sandbox", dependencies: ["CShim", "CSeccomp", "CCap"]),
        .target(
            name: "IPC",
            dependencies: ["CShim", "VirtioCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The VMM core: KVM, guest memory, boot, devices, workers, host networking, kernel
        // store, and the Firecracker-compatible API (resources, routes, the API thread). No
        // argument parsing and no exit codes: the CLI is a front door to it.
        // FoundationEssentials only, never Foundation.
        .target(
            name: "VMM",
            dependencies: [
                "APIServer", "CShim", "IPC", "Sandbox", "VirtioCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `volt-vmm`: the swift-argument-parser commands. They parse flags, build the VMM's
        // configuration, call into VMM, and map its errors to exit codes.
        .executableTarget(
            name: "VMMMain",
            dependencies: [
                "VMM", "APIServer", "CShim", "Sandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Guest memory and split virtqueues for the device workers (no Foundation).
        .target(
            name: "VirtioCore",
            dependencies: ["CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Test and benchmark tooling only (never linked into a shipped executable): a
        // vhost-user frontend that plays VMM + guest driver, plus block/net request helpers.
        .target(
            name: "TestFrontend",
            dependencies: ["CShim", "IPC", "VirtioCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Helpers shared by test targets (prerequisite checks: loud skip or CI failure).
        .target(name: "TestSupport"),
        // What every worker borrows: rings, queue threads, memory tables, inflight
        // tracking, counters, the process skeleton. No Foundation.
        .target(
            name: "WorkerCore",
            dependencies: ["CShim", "IPC", "Sandbox", "VirtioCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // vhost-user-blk worker: no Foundation (Glibc, SystemPackage, IPC, VirtioCore only).
        .executableTarget(
            name: "BlockWorker",
            dependencies: ["CShim", "IPC", "Sandbox", "VirtioCore", "WorkerCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "NetWorker",
            dependencies: ["CShim", "IPC", "Sandbox", "VirtioCore", "WorkerCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "EntropyWorker",
            dependencies: ["CShim", "IPC", "Sandbox", "VirtioCore", "WorkerCore"]
        ),
        // vhost-user-vsock worker with Firecracker's host-side Unix-socket protocol.
        .executableTarget(
            name: "VsockWorker",
            dependencies: ["CShim", "IPC", "Sandbox", "VirtioCore", "WorkerCore"]
        ),
        .testTarget(
            name: "VsockWorkerTests",
            dependencies: ["VsockWorker", "WorkerCore", "IPC", "VirtioCore", "Sandbox", "CShim", "TestFrontend", "VoltTestSupport"]
        ),
        .testTarget(
            name: "IPCTests",
            dependencies: ["IPC", "CShim", "TestFrontend", "TestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Shared by the integration tests: binaries, guests, kernels, prerequisites, process runner.
        .target(name: "VoltTestSupport", dependencies: ["TestSupport", "NetTestShim"], path: "Tests/TestSupport"),
        .testTarget(
            name: "VMMTests",
            dependencies: ["VMM", "VMMMain", "APIServer", "CShim", "Sandbox", "TestFrontend", "VoltTestSupport", "NetTestShim", "VirtioCore", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "BlockWorkerTests",
            dependencies: ["BlockWorker", "Sandbox", "IPC", "VirtioCore", "CShim", "VoltTestSupport", "TestFrontend", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "NetWorkerTests",
            dependencies: ["NetWorker", "Sandbox", "NetTestShim", "IPC", "VirtioCore", "CShim", "VoltTestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Benchmarks (tooling, never shipped): volt-blk-worker vs qemu-storage-daemon vs raw
        // host I/O, volt-net-worker vs a bare TAP loop, the API's round trip and start
        // (volt-vmm driven through APIServer's client). Foundation is fine here.
        .executableTarget(
            name: "VoltBench",
            dependencies: [
                "TestFrontend", "IPC", "VirtioCore", "CShim", "NetTestShim", "APIServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // setns + AF_PACKET for NetWorkerTests and volt-bench's net benchmark.
        .target(name: "NetTestShim", path: "Tests/NetTestShim"),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox"]),
        .testTarget(name: "APIServerTests", dependencies: ["APIServer", "CHTTPParser", "CShim", "Sandbox", "TestFrontend"]),
        .testTarget(
            name: "EntropyWorkerTests",
            dependencies: ["EntropyWorker", "WorkerCore", "IPC", "VirtioCore", "Sandbox", "TestFrontend", "VoltTestSupport"]
        ),
        .testTarget(name: "WorkerCoreTests", dependencies: ["WorkerCore", "IPC", "VirtioCore", "TestFrontend"]),
        .testTarget(
            name: "VirtioCoreTests",
            dependencies: ["VirtioCore", "CShim", "TestFrontend", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "TestFrontendTests",
            dependencies: ["TestFrontend", "TestSupport", "IPC", "VirtioCore"]
        ),
    ],
    swiftLanguageModes: [.v5]
)

// Coverage-guided fuzzing (scripts/fuzz.sh): only when VOLT_FUZZ=1, in its own scratch
// path, so `swift build` / `swift test` never see these targets. One libFuzzer binary,
// `volt-fuzz`, holds every target (VOLT_FUZZ_TARGET picks one). Built with
// -sanitize=fuzzer,address on the command line (every module instrumented).
if Context.environment["VOLT_FUZZ"] == "1" {
    package.products = []
    package.targets = package.targets.filter { $0.type != .test && !["VMMMain", "VoltBench"].contains($0.name) }
    package.targets.append(
        .executableTarget(
            name: "VoltFuzz",
            dependencies: ["IPC", "VirtioCore", "CShim", .product(name: "SystemPackage", package: "swift-system")],
            path: "fuzz/Sources/VoltFuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    )
}
