import APIServer
import CShim
import Foundation
import Glibc
import NetTestShim

/// One round-trip row: a request sent over and over to a volt-vmm that waits for
/// InstanceStart, by `HTTPClient` (a connection per request) or on one `HTTPConnection`
/// kept alive.
struct RoundTripRow {
    let name: String
    let method: String
    let path: String
    let body: [UInt8]?
    let status: Int
    let keepAlive: Bool

    static let machineConfig = Array(#"{"vcpu_count":1,"mem_size_mib":128}"#.utf8)
    static let rows: [RoundTripRow] = [
        RoundTripRow(name: "PUT /machine-config, connection per request", method: "PUT", path: "/machine-config",
                     body: machineConfig, status: 204, keepAlive: false),
        RoundTripRow(name: "PUT /machine-config, keep-alive", method: "PUT", path: "/machine-config",
                     body: machineConfig, status: 204, keepAlive: true),
        RoundTripRow(name: "GET /, connection per request", method: "GET", path: "/", body: nil, status: 200, keepAlive: false),
        RoundTripRow(name: "GET /, keep-alive", method: "GET", path: "/", body: nil, status: 200, keepAlive: true),
    ]
}

/// `volt-bench api`: the API's round trip against a waiting volt-vmm, and the time from
/// exec to the guest's first line when the VM is configured by API or by flags. One table.
struct APIBench {
    var volt: String
    var guest: String
    var requests: Int
    var rounds: Int
    var runs: Int
    /// `--cpus A,B`: this process's requests on CPU A, volt-vmm (every thread) on CPU B.
    var cpus: (client: Int32, vmm: Int32)?
    static let memoryMiB = 128
    static let warmupRequests = 100
    static let marker = "VOLT-GUEST hello: ok"
    /// volt-vmm run's default, given to both: PUT /boot-source's default is Firecracker's.
    static let cmdline = "console=ttyS0 reboot=k panic=-1"

    func run() throws {
        guard access(volt, X_OK) == 0 else { throw BenchError("\(volt) not found: build it first (swift build -c release)") }
        guard let resolved = realpath(guest, nil) else {
            throw BenchError("\(guest) not found: build the test guests first (make -C guests), or give --guest")
        }
        let guestPath = String(cString: resolved)
        free(resolved)
        let work = try makeWorkDirectory()
        if let cpus { try pin(cpus.client) }

        var roundTrips: [[UInt64]] = []
        if requests > 0 { roundTrips = try measureRoundTrips(work: work) }
        var starts: [String: [UInt64]] = [:]
        if runs > 0 { starts = try measureStarts(work: work, guest: guestPath) }

        print("volt-bench api — \(machineSummary())")
        print("volt-vmm: \(volt); " + (cpus.map { "volt-bench's requests pinned to CPU \($0.client), volt-vmm to CPU \($0.vmm)" }
                                          ?? "not pinned (the scheduler places both)"))
        if requests > 0 {
            print("round trip: \(requests) requests per row against `volt-vmm run --api-sock S` waiting for InstanceStart, in \(rounds) rounds"
                  + " (rows taking turns, \(Self.warmupRequests) uncounted first); time = write of the request to the last byte of the answer")
            print("  connection per request = APIServer.HTTPClient.request (connect, request with Connection: close, answer, close);"
                  + " keep-alive = one APIServer.HTTPConnection per row and round")
        }
        if runs > 0 {
            print("start: \(runs) runs each, alternating (who goes first alternates too), 1 uncounted each first; guest \(guestPath),"
                  + " \(Self.memoryMiB) MiB, 1 vCPU, cmdline \"\(Self.cmdline)\"")
            print("  flags = `volt-vmm run --kernel G --cmdline C --memory \(Self.memoryMiB) --vcpus 1`; API = `volt-vmm run --api-sock S`, then"
                  + " PUT /boot-source (boot_args C), PUT /machine-config, PUT /actions InstanceStart (HTTPClient) once its log says the socket listens")
            print("  times from just before the exec (Process.run) to: the socket listening, the InstanceStart 204, the first line on stdout")
        }
        print("")
        var table = Table(header: ["row", "n", "unit", "p50", "p90", "p99", "max", "api/flags (p50, p90)"])
        func add(_ name: String, _ samples: [UInt64], unit: String, ratio: String = "") {
            let s = samples.sorted()
            let scale = unit == "µs" ? 1e3 : 1e6
            let digits = unit == "µs" ? 1 : 2
            table.rows.append([name, formatCount(Double(s.count)), unit] + [0.5, 0.9, 0.99, 1.0].map { format(Double(percentile(s, $0)) / scale, digits) } + [ratio])
        }
        for (row, samples) in zip(RoundTripRow.rows, roundTrips) { add(row.name, samples, unit: "µs") }
        if runs > 0 {
            let flags = starts["flags"]!.sorted(), api = starts["api line"]!.sorted()
            let ratio = [0.5, 0.9].map { format(Double(percentile(api, $0)) / Double(percentile(flags, $0)), 2) }.joined(separator: ", ")
            add("start, flags: exec → first guest line", flags, unit: "ms")
            add("start, API: exec → socket listening", starts["api socket"]!, unit: "ms")
            add("start, API: exec → InstanceStart 204", starts["api 204"]!, unit: "ms")
            add("start, API: exec → first guest line", api, unit: "ms", ratio: ratio)
            add("start, API: 3 PUTs (socket listening → 204)", starts["api puts"]!, unit: "ms")
        }
        print(table.render())
        fflush(stdout)
    }

    /// One waiting volt-vmm; each row's requests in `rounds` slices, the rows rotating.
    private func measureRoundTrips(work: String) throws -> [[UInt64]] {
        let socket = work + "/rt.sock"
        let vmm = try spawn(["run", "--api-sock", socket])
        let cleanup = Cleanup.shared.add { vmm.child.stop() }
        defer { Cleanup.shared.run(cleanup) }
        try vmm.waitForAPISocket(socket)

        let rows = RoundTripRow.rows
        var samples = [[UInt64]](repeating: [], count: rows.count)
        func slice(_ row: RoundTripRow, count: Int, into out: inout [UInt64]) throws {
            let connection = row.keepAlive ? try HTTPConnection(socketPath: socket) : nil
            for _ in 0..<count {
                let t0 = now()
                let status: Int
                if let connection {
                    status = try connection.request(method: row.method, path: row.path, body: row.body).status
                } else {
                    status = try HTTPClient.request(socketPath: socket, method: row.method, path: row.path, body: row.body).status
                }
                let t = now() - t0
                guard status == row.status else { throw BenchError("\(row.name): status \(status), wanted \(row.status)") }
                out.append(t)
            }
        }
        var ignored: [UInt64] = []
        for row in rows { try slice(row, count: Self.warmupRequests, into: &ignored) }
        fputs("  round trip:", stderr)
        for round in 0..<rounds {
            for k in 0..<rows.count {
                let i = (k + round) % rows.count
                let count = requests / rounds + (round < requests % rounds ? 1 : 0)
                try slice(rows[i], count: count, into: &samples[i])
            }
            fputs(" \(round + 1)/\(rounds)", stderr)
        }
        fputs("\n", stderr)
        guard vmm.child.process.isRunning else { throw BenchError("volt-vmm exited during the round trips: \(vmm.log)") }
        return samples
    }

    /// `runs` starts of each kind, alternating; returns ns per measure.
    private func measureStarts(work: String, guest: String) throws -> [String: [UInt64]] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let bootSource = Array(try encoder.encode(["kernel_image_path": guest, "boot_args": Self.cmdline]))
        var out: [String: [UInt64]] = [:]
        var n = 0
        fputs("  start:", stderr)
        for run in -1..<runs {   // run -1: one uncounted start of each
            for api in run % 2 == 0 ? [true, false] : [false, true] {
                n += 1
                let times = api ? try startByAPI(socket: work + "/start\(n).sock", bootSource: bootSource) : try startByFlags(guest: guest)
                if run >= 0 { for (k, v) in times { out[k, default: []].append(v) } }
            }
            if run >= 0 && (run + 1) % 10 == 0 { fputs(" \(run + 1)/\(runs)", stderr) }
        }
        fputs("\n", stderr)
        return out
    }

    private func startByFlags(guest: String) throws -> [String: UInt64] {
        let vmm = try spawn(["run", "--kernel", guest, "--cmdline", Self.cmdline, "--memory", "\(Self.memoryMiB)", "--vcpus", "1"])
        let cleanup = Cleanup.shared.add { vmm.child.stop() }
        defer { Cleanup.shared.run(cleanup) }
        let line = try vmm.firstLine()
        try check(line.text, vmm)
        return ["flags": line.at - vmm.started]
    }

    private func startByAPI(socket: String, bootSource: [UInt8]) throws -> [String: UInt64] {
        let vmm = try spawn(["run", "--api-sock", socket])
        let cleanup = Cleanup.shared.add { vmm.child.stop(); unlink(socket) }
        defer { Cleanup.shared.run(cleanup) }
        try vmm.waitForAPISocket(socket)
        let listening = now()
        let requests: [(String, [UInt8])] = [
            ("/boot-source", bootSource),
            ("/machine-config", Array(#"{"vcpu_count":1,"mem_size_mib":\#(Self.memoryMiB)}"#.utf8)),
            ("/actions", Array(#"{"action_type":"InstanceStart"}"#.utf8)),
        ]
        for (path, body) in requests {
            let answer = try HTTPClient.request(socketPath: socket, method: "PUT", path: path, body: body)
            guard answer.status == 204 else {
                throw BenchError("PUT \(path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
            }
        }
        let accepted = now()
        let line = try vmm.firstLine()
        try check(line.text, vmm)
        return ["api socket": listening - vmm.started, "api 204": accepted - vmm.started, "api line": line.at - vmm.started,
                "api puts": accepted - listening]
    }

    /// volt-vmm with `arguments`; with `--cpus` it inherits CPU B from this thread, which
    /// then goes back to CPU A.
    private func spawn(_ arguments: [String]) throws -> WatchedVMM {
        guard let cpus else { return try WatchedVMM(volt, arguments) }
        try pin(cpus.vmm)
        defer { try? pin(cpus.client) }
        return try WatchedVMM(volt, arguments)
    }

    private func pin(_ cpu: Int32) throws {
        let r = nts_pin_thread(cpu)
        guard r == 0 else { throw BenchError("pinning to CPU \(cpu): errno \(-r)") }
    }

    /// The first line is the guest's marker, and volt-vmm then exits 0 (the guest resets).
    private func check(_ line: String, _ vmm: WatchedVMM) throws {
        guard line == Self.marker else { throw BenchError("first stdout line \"\(line)\", wanted \"\(Self.marker)\"") }
        let status = vmm.finish()
        guard status == 0 else { throw BenchError("volt-vmm exited \(status): \(vmm.log)") }
    }
}
