import Foundation
import Glibc
import Testing
@testable import APIServer

/// The socket file's life cycle. Serialized: one test changes the process umask.
@Suite(.serialized) struct SocketFileTests {
    private func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode : nil
    }

    private func serves(_ server: APIServer) throws -> Bool {
        let stop = try EventPair()
        let thread = Thread { try? server.run(handler: echoHandler, stopFD: stop.readFD) }
        thread.start()
        defer { stop.signalAndWait(thread) }
        guard let path = server.path else { return false }
        return (try? HTTPClient.request(socketPath: path, method: "GET", path: "/ok").status) == 200
    }

    @Test func createdWithMode0600EvenUnderAPermissiveUmask() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let old = umask(0)
        defer { umask(old) }
        let server = try APIServer.listen(path: dir + "/api.sock")
        defer { server.remove() }
        let m = try #require(mode(dir + "/api.sock"))
        #expect(m & S_IFMT == S_IFSOCK)
        #expect(m & 0o777 == 0o600)
        // Nothing left behind from the private bind directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["api.sock"])
        #expect(try serves(server))
    }

    @Test func relativePath() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let cwd = FileManager.default.currentDirectoryPath
        chdir(dir)
        defer { chdir(cwd) }
        let server = try APIServer.listen(path: "rel.sock")
        defer { server.remove() }
        #expect(mode(dir + "/rel.sock").map { $0 & 0o777 } == 0o600)
    }

    @Test func longPathFallsBackToADirectBindUnderUmask() throws {
        // Too long for the temporary name to fit in sun_path, short enough for itself.
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        var parent = dir
        while parent.utf8.count < 95 { parent += "/dddddddd" }
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let path = parent + "/" + String(repeating: "s", count: UnixSocket.maxPathBytes - parent.utf8.count - 1)
        #expect(path.utf8.count == UnixSocket.maxPathBytes)
        let old = umask(0)
        defer { umask(old) }
        let server = try APIServer.listen(path: path)
        defer { server.remove() }
        #expect(mode(path).map { $0 & 0o777 } == 0o600)
        #expect(umask(0) == 0)   // restored
        #expect(try serves(server))
    }

    @Test func pathTooLongIsRefused() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        #expect(throws: APIServerError.pathTooLong(path: path)) { try APIServer.listen(path: path) }
        #expect(APIServerError.pathTooLong(path: path).description.contains("at most 107"))
    }

    @Test func refusedWhenLive() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let first = try APIServer.listen(path: dir + "/api.sock")
        defer { first.remove() }
        let error = #expect(throws: APIServerError.socketInUse(path: dir + "/api.sock")) {
            try APIServer.listen(path: dir + "/api.sock")
        }
        #expect(error?.description.contains(dir + "/api.sock") == true)
        #expect(error?.description.contains("--api-sock") == true)
        #expect(try serves(first))   // the live one is untouched
    }

    @Test func replacedWhenStale() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let path = dir + "/api.sock"
        let fd = try UnixSocket.newSocket()
        try UnixSocket.bind(fd, path)   // bound, never listening, then closed: stale
        close(fd)
        let server = try APIServer.listen(path: path)
        defer { server.remove() }
        #expect(try serves(server))
    }

    @Test func replacedWhenLeftByADeadServer() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let path = dir + "/api.sock"
        do {
            _ = try APIServer.listen(path: path)   // deinit closes the fd, no remove(): stale file
        }
        #expect(mode(path) != nil)
        let server = try APIServer.listen(path: path)
        defer { server.remove() }
        #expect(try serves(server))
    }

    @Test func refusedWhenNotASocket() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let file = dir + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("keep me".utf8)))
        let error = #expect(throws: APIServerError.notASocket(path: file)) { try APIServer.listen(path: file) }
        #expect(error?.description.contains(file) == true)
        #expect(FileManager.default.contents(atPath: file) == Data("keep me".utf8))
        #expect(throws: APIServerError.notASocket(path: dir)) { try APIServer.listen(path: dir) }
        symlink(file, dir + "/link")
        #expect(throws: APIServerError.notASocket(path: dir + "/link")) { try APIServer.listen(path: dir + "/link") }
    }

    @Test func missingDirectoryIsASystemError() {
        #expect(throws: APIServerError.self) { try APIServer.listen(path: "/nonexistent-dir-volt/api.sock") }
    }

    @Test func removeUnlinksOnlyOurSocket() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let path = dir + "/api.sock"
        let server = try APIServer.listen(path: path)
        server.remove()
        #expect(mode(path) == nil)
        server.remove()   // twice is fine
        // Someone else's file at the path since: left alone.
        let other = try APIServer.listen(path: path)
        defer { other.remove() }
        server.remove()
        #expect(mode(path) != nil)
    }

    @Test func adoptsAListeningFD() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let fd = try UnixSocket.newSocket()
        try UnixSocket.bind(fd, dir + "/inherited.sock")
        Glibc.listen(fd, 8)
        let server = try APIServer(listeningFD: fd)
        #expect(server.path == nil)
        #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        let stop = try EventPair()
        let thread = Thread { try? server.run(handler: echoHandler, stopFD: stop.readFD) }
        thread.start()
        defer { stop.signalAndWait(thread) }
        #expect(try HTTPClient.request(socketPath: dir + "/inherited.sock", method: "GET", path: "/").status == 200)
    }

    @Test func refusesAnFDThatIsNotListening() throws {
        let fd = try UnixSocket.newSocket()
        defer { close(fd) }
        #expect(throws: APIServerError.notAListeningSocket(fd: fd)) { try APIServer(listeningFD: fd) }
        let file = open("/dev/null", O_RDONLY)
        defer { close(file) }
        #expect(throws: APIServerError.notAListeningSocket(fd: file)) { try APIServer(listeningFD: file) }
    }
}

/// A pipe as a stop fd, plus a way to wait for the server thread to return.
final class EventPair: @unchecked Sendable {
    let readFD: CInt
    let writeFD: CInt

    init() throws {
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw APIServerError.system(operation: "pipe", errno: .init(rawValue: errno)) }
        (readFD, writeFD) = (fds[0], fds[1])
    }

    func signalAndWait(_ thread: Thread) {
        _ = write(writeFD, "x", 1)
        let deadline = Date().addingTimeInterval(5)
        while !thread.isFinished && Date() < deadline { usleep(1000) }
        close(readFD)
        close(writeFD)
    }
}
