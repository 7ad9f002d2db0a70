// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "volt-vmm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "volt-vmm", targets: ["VMMMain"]),
        .executable(name: "volt-blk-worker", targets: ["BlockWorker"]),
        .executable(name: "volt-net-worker", targets: ["NetWorker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // Only what Swift cannot import: ioctl request macros, variadic syscalls, CMSG.
        .target(name: "CShim"),
        .target(
            name: "IPC",
            dependencies: ["CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "VMMMain",
            dependencies: [
                "CShim", "IPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Guest memory and split virtqueues for the device workers (no Foundation).
        .target(
            name: "VirtioCore",
            dependencies: ["CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // vhost-user-blk worker: no Foundation (Glibc, SystemPackage, IPC, VirtioCore only).
        .executableTarget(
            name: "BlockWorker",
            dependencies: ["CShim", "IPC", "VirtioCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(name: "NetWorker", dependencies: ["CShim", "IPC"]),
        .testTarget(
            name: "IPCTests",
            dependencies: ["IPC", "CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Shared by the integration tests: binaries, guests, kernels, prerequisites, process runner.
        .target(name: "VoltTestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "VMMMainTests",
            dependencies: ["VMMMain", "CShim", "VoltTestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "BlockWorkerTests",
            dependencies: ["BlockWorker", "IPC", "VirtioCore", "CShim", "VoltTestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "VirtioCoreTests",
            dependencies: ["VirtioCore", "CShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
