import Foundation

/// qemu-storage-daemon exporting a raw image as a vhost-user-blk backend: a real peer
/// we did not write (package qemu-system-common).
public final class StorageDaemon {
    public static let path = "/usr/bin/qemu-storage-daemon"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: path) }

    public let socket: String
    let process = Process()

    public init(image: String, socket: String, writable: Bool = true) throws {
        self.socket = socket
        try? FileManager.default.removeItem(atPath: socket)
        process.executableURL = URL(fileURLWithPath: Self.path)
        process.arguments = [
            "--blockdev", "driver=file,node-name=f0,filename=\(image)",
            "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=\(socket),writable=\(writable ? "on" : "off")",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) {
            guard Date() < deadline, process.isRunning else { throw RunFailure("qemu-storage-daemon did not create \(socket)") }
            usleep(10_000)
        }
    }

    public func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: socket)
    }
}

public struct RunFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh temporary directory per test, removed by the caller.
public func makeTemporaryDirectory(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("volt-\(name)-\(getpid())-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
