import APIServer
import Foundation
import Testing
import VoltTestSupport

/// A volt-vmm process driven through its API socket, as a Firecracker client would: the
/// process runs in the background (output collected), requests go over the real socket.
final class APIVM {
    let socket: String
    let process: Background

    /// `volt-vmm run --api-sock SOCKET arguments`, or `command` (e.g. `ip netns exec ns
    /// volt-vmm ...`, or `volt-vmm firecracker ...`) when given in full.
    init(socket: String, arguments: [String] = [], command: [String]? = nil) throws {
        self.socket = socket
        let argv = command ?? [TestEnvironment.voltVMM, "run", "--api-sock", socket] + arguments
        process = try Background(argv[0], Array(argv.dropFirst()))
    }

    /// The socket answers (volt-vmm says so once it listens).
    func ready() -> Bool { process.waitFor("waiting for requests", timeout: 30) }

    struct Answer {
        let status: Int
        let body: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
        var fault: String { json["fault_message"] as? String ?? "" }
    }

    /// One request; a transport error is status -1 with the error as its body.
    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil) -> Answer {
        do {
            let r = try HTTPClient.request(socketPath: socket, method: method, path: path, body: body.map { Array($0.utf8) })
            return Answer(status: r.status, body: String(decoding: r.body, as: UTF8.self))
        } catch {
            return Answer(status: -1, body: "\(error)")
        }
    }

    func state() -> String { call("GET", "/").json["state"] as? String ?? "" }

    /// Waits for the process to end by itself (killing it after `timeout`), its status.
    func exitStatus(timeout: Double = 60) -> Int32 {
        process.wait(timeout: timeout) ? process.process.terminationStatus : process.stop()
    }

    var stdout: String { process.stdout }
    var stderr: String { process.stderr }

    /// The ticker guest's lines so far: (tick, tsc_ms, kvm_ms).
    var ticks: [(tick: Int, tsc: Int, kvm: Int)] {
        stdout.split(whereSeparator: \.isNewline).compactMap { line in
            guard line.hasPrefix("VOLT-GUEST ticker: tick=") else { return nil }
            let f = Dictionary(line.split(separator: " ").dropFirst(2).compactMap { pair -> (String, Int)? in
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let v = Int(kv[1]) else { return nil }
                return (String(kv[0]), v)
            }, uniquingKeysWith: { $1 })
            guard let k = f["tick"], let t = f["tsc_ms"], let m = f["kvm_ms"] else { return nil }
            return (k, t, m)
        }
    }

    /// Waits until the guest has printed tick `n`.
    func waitForTick(_ n: Int, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if ticks.last.map({ $0.tick >= n }) == true { return true }
            if !process.process.isRunning { return false }
            usleep(10_000)
        }
        return false
    }
}

/// A socket path of this test process, short enough for sun_path.
func apiSocketPath(_ tag: String) -> String { "/tmp/volt-api-\(getpid())-\(tag).sock" }
