import APIServer
import ArgumentParser
@preconcurrency import Glibc
import VMM

/// `volt-vmm snapshot --api-sock S DIR`: a full snapshot of a running VM into DIR/state
/// and DIR/memory (what `run --restore DIR` starts from). Pauses the VM for it and runs
/// it again after, whatever happened; a paused VM stays paused.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshot a VM through its API socket into a directory (state + memory).",
        discussion: """
        DIR must be beneath one of the VM's --snapshot-dir directories (volt-vmm can create
        files nowhere else once it runs); it is created if missing. Restore with
        `volt-vmm run --restore DIR`. Exit status: 0 done, 1 refused or failed (the VM
        runs on as before), 2 the socket cannot be reached.
        """)

    @Option(help: "The VM's API socket.") var apiSock: String
    @Argument(help: "Where the snapshot goes: DIR/state and DIR/memory.") var directory: String

    func run() throws {
        let dir = directory.hasPrefix("/") ? directory : WorkingDirectory.current + "/" + directory
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            fail(1, "cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        let info = call("GET", "/", nil)
        let wasRunning = String(decoding: info, as: UTF8.self).contains(#""state":"Running""#)
        if wasRunning { _ = call("PATCH", "/vm", #"{"state": "Paused"}"#) }
        let body = #"{"snapshot_type": "Full", "snapshot_path": "\#(dir)/state", "mem_file_path": "\#(dir)/memory"}"#
        let result = request("PUT", "/snapshot/create", body)
        if wasRunning { _ = call("PATCH", "/vm", #"{"state": "Resumed"}"#) }
        if case let .failure(message) = result { fail(1, message.description) }
        print("\(dir)/state\n\(dir)/memory")
    }

    /// One request; exits on a fault or an unreachable socket.
    private func call(_ method: String, _ path: String, _ body: String?) -> [UInt8] {
        switch request(method, path, body) {
        case let .success(answer): return answer
        case let .failure(message): fail(1, message.description)
        }
    }

    private func request(_ method: String, _ path: String, _ body: String?) -> Result<[UInt8], Message> {
        let answer: (status: Int, body: [UInt8])
        do {
            answer = try HTTPClient.request(socketPath: apiSock, method: method, path: path,
                                            body: body.map { Array($0.utf8) }, timeout: .seconds(600))
        } catch {
            fail(2, "\(apiSock): \(error)")
        }
        guard (200..<300).contains(answer.status) else {
            return .failure(Message("\(method) \(path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))"))
        }
        return .success(answer.body)
    }

    private struct Message: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

    private func fail(_ code: Int32, _ message: String) -> Never {
        fputs("volt-vmm snapshot: \(message)\n", stderr)
        Glibc.exit(code)
    }
}
