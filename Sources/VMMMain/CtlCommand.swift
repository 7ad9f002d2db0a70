import APIServer
import ArgumentParser
@preconcurrency import Glibc

/// A client for the API, for people at a shell: one request, the JSON answer printed.
struct CtlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Send one request to a VM's API socket and print the answer.",
        discussion: """
        info     GET /             (state: Not started, Running, Paused)
        config   GET /vm/config    (the whole configuration, Firecracker's FullVmConfiguration)
        start    PUT /actions InstanceStart
        pause    PATCH /vm Paused
        resume   PATCH /vm Resumed
        stop     PUT /actions SendCtrlAltDel (a guest with an i8042 keyboard driver reboots)
        flush    PUT /actions FlushMetrics

        Exit status: 0 for a 2xx answer, 1 for a fault (printed on stderr), 2 when the
        socket cannot be reached.
        """)

    enum Verb: String, ExpressibleByArgument, CaseIterable { case info, config, start, pause, resume, stop, flush }

    @Option(help: "The VM's API socket.") var apiSock: String
    @Argument(help: "info | config | start | pause | resume | stop | flush") var verb: Verb

    func run() throws {
        let (method, path, body): (String, String, String?)
        switch verb {
        case .info: (method, path, body) = ("GET", "/", nil)
        case .config: (method, path, body) = ("GET", "/vm/config", nil)
        case .start: (method, path, body) = ("PUT", "/actions", #"{"action_type": "InstanceStart"}"#)
        case .pause: (method, path, body) = ("PATCH", "/vm", #"{"state": "Paused"}"#)
        case .resume: (method, path, body) = ("PATCH", "/vm", #"{"state": "Resumed"}"#)
        case .stop: (method, path, body) = ("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#)
        case .flush: (method, path, body) = ("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#)
        }
        let answer: (status: Int, body: [UInt8])
        do {
            answer = try HTTPClient.request(socketPath: apiSock, method: method, path: path,
                                            body: body.map { Array($0.utf8) }, timeout: .seconds(60))
        } catch {
            fputs("volt-vmm ctl: \(apiSock): \(error)\n", stderr)
            throw ExitCode(2)
        }
        let text = String(decoding: answer.body, as: UTF8.self)
        guard (200..<300).contains(answer.status) else {
            fputs("volt-vmm ctl: \(method) \(path): \(answer.status) \(text)\n", stderr)
            throw ExitCode(1)
        }
        print(text.isEmpty ? "{}" : text)
    }
}
