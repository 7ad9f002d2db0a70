import Foundation
import Glibc
import Testing
@testable import IPC

@Suite struct ListenerTests {
    func tempPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ipc-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    @Test func listenConnectAccept() throws {
        let path = tempPath("s.sock")
        let listener = try Listener(path: path)
        let client = try Connection.connect(path: path)
        let server = try listener.accept()
        try client.send(.request(.setOwner, size: 0))
        #expect(try server.receive().header.request == Request.setOwner.rawValue)
    }

    @Test func staleSocketIsReplaced() throws {
        let path = tempPath("stale.sock")
        do { _ = try Listener(path: path) }           // leaves the socket file behind
        #expect(FileManager.default.fileExists(atPath: path))
        let listener = try Listener(path: path)
        _ = try Connection.connect(path: path)
        _ = try listener.accept()
    }

    /// The socket file appears only once it listens (bound under a temporary name, then
    /// renamed): a front-end polling for the file always connects. A path with no room
    /// for the temporary suffix (107 bytes, the sun_path limit) is bound directly.
    @Test(arguments: [false, true])
    func theSocketAppearsListeningAndLeavesNoTemporaryName(longestPath: Bool) throws {
        let dir = (tempPath("x") as NSString).deletingLastPathComponent
        let name = longestPath ? String(repeating: "s", count: 107 - dir.count - 1) : "s.sock"
        let path = dir + "/" + name
        let listener = try Listener(path: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [name])
        _ = try Connection.connect(path: path)
        _ = try listener.accept()
    }

    @Test func regularFileIsNotRemoved() throws {
        let path = tempPath("file")
        _ = FileManager.default.createFile(atPath: path, contents: Data([1]))
        #expect(throws: VhostUserError.system(operation: "remove stale socket \(path)", errno: EEXIST)) { try Listener(path: path) }
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func adoptInheritedChecksSocket() throws {
        let e = try makeEventFD()
        let dup = try e.duplicate()
        #expect(throws: VhostUserError.self) { try Connection.adoptInherited(fd: dup.rawValue) }
        let (a, b) = try Connection.pair()
        let raw = try b.socket.duplicate()
        let adopted = try Connection.adoptInherited(fd: fcntl(raw.rawValue, F_DUPFD_CLOEXEC, 0))
        try a.send(.request(.setOwner, size: 0))
        #expect(try adopted.receive().header.request == 3)
    }

    @Test func parseEndpoint() throws {
        #expect(try BackendEndpoint.parse(["--socket-path=/tmp/x"]) == .socketPath("/tmp/x"))
        #expect(try BackendEndpoint.parse(["-v", "--socket-path", "/tmp/y"]) == .socketPath("/tmp/y"))
        #expect(try BackendEndpoint.parse(["--fd=3"]) == .inheritedFd(3))
        #expect(try BackendEndpoint.parse(["--fd", "4", "--blk-file=x"]) == .inheritedFd(4))
        #expect(try BackendEndpoint.parse(["--read-only"]) == nil)
        #expect(throws: VhostUserError.self) { try BackendEndpoint.parse(["--fd=3", "--socket-path=/x"]) }
        #expect(throws: VhostUserError.self) { try BackendEndpoint.parse(["--fd=-1"]) }
        #expect(throws: VhostUserError.self) { try BackendEndpoint.parse(["--socket-path"]) }
    }
}
