import Foundation
import Testing
import TestFrontend
import TestSupport

/// A 1 MiB image with a known pattern, exported by qemu-storage-daemon, and a test
/// frontend connected to it. nil (after a loud skip) when the daemon is not installed.
final class BlockFixture {
    static let sectors = 2048

    /// Byte `i` of sector `n` in the image as created.
    static func pattern(sector n: Int) -> [UInt8] {
        (0..<VirtioBlockRequest.sectorSize).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0 &+ ($0 >> 8)) }
    }

    let directory: URL
    let image: String
    let daemon: QemuStorageDaemon
    let frontend: VhostUserTestFrontend

    static func make(options: TestFrontendOptions = TestFrontendOptions(), start: Bool = true) throws -> BlockFixture? {
        guard Prerequisite.require(QemuStorageDaemon.executable != nil,
                                   "qemu-storage-daemon not found (apt-get install qemu-system-common)") else { return nil }
        return try BlockFixture(options: options, start: start)
    }

    private init(options: TestFrontendOptions, start: Bool) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("testfrontend-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        image = directory.appendingPathComponent("disk.img").path
        let contents = (0..<Self.sectors).flatMap { Self.pattern(sector: $0) }
        try Data(contents).write(to: URL(fileURLWithPath: image))
        daemon = try QemuStorageDaemon(image: image, socketPath: directory.appendingPathComponent("blk.sock").path,
                                       logPath: directory.appendingPathComponent("qsd.log").path)
        frontend = try daemon.frontend(options: options)
        if start { try frontend.start() }
    }

    /// The image file's sector `n` as it is on the host now.
    func imageSector(_ n: Int) throws -> [UInt8] {
        let data = try Data(contentsOf: URL(fileURLWithPath: image))
        return Array(data[(n * 512)..<((n + 1) * 512)])
    }

    deinit {
        daemon.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
