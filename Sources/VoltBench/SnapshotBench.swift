import APIServer
import Foundation
import Glibc

/// `volt-bench snapshot`: snapshot create time, restore vs cold boot (exec → vCPUs running,
/// exec → the guest's first line) for guests that touched little or all of their memory,
/// and many restores of one snapshot at once. One table. The guest is guests/counter.elf.
struct SnapshotBench {
    var volt: String
    var guest: String
    var memories: [Int]
    var runs: Int
    var clones: Int

    /// What the guest prints per line; `counter.kib=1` keeps the per-line checksum short
    /// (every guest instruction is emulated here, ~0.5 µs each).
    static let cmdline = "console=ttyS0 counter.ms=20 counter.kib=1"
    /// The log line volt-vmm writes (info) once every vCPU thread runs the guest.
    static let running = "started 1 vCPU(s)"

    /// One snapshot to measure: memory size, and how much of it the guest wrote.
    struct Case {
        let memoryMiB: Int
        let touchMiB: Int
        var label: String { "\(memoryMiB) MiB, " + (touchMiB == 0 ? "light (~50 KiB written)" : "\(touchMiB) MiB written") }
        /// counter.elf touches from 32 MiB up; leave its top 8 MiB alone.
        static func all(_ memoryMiB: Int) -> Case { Case(memoryMiB: memoryMiB, touchMiB: memoryMiB - 40) }
    }

    func run() throws {
        guard access(volt, X_OK) == 0 else { throw BenchError("\(volt) not found: build it first (swift build -c release)") }
        guard let resolved = realpath(guest, nil) else {
            throw BenchError("\(guest) not found: build the test guests first (make -C guests), or give --guest")
        }
        let guestPath = String(cString: resolved)
        free(resolved)
        let work = try makeWorkDirectory()
        let cases = memories.flatMap { [Case(memoryMiB: $0, touchMiB: 0), Case.all($0)] }

        var table = Table(header: ["snapshot", "row", "n", "p50 ms", "p90 ms", "max ms", "restore/cold (p50)"])
        func add(_ label: String, _ row: String, _ samples: [UInt64], ratio: String = "") {
            let s = samples.sorted()
            table.rows.append([label, row, "\(s.count)"] + [0.5, 0.9, 1.0].map { format(Double(percentile(s, $0)) / 1e6, 2) } + [ratio])
        }
        var notes: [String] = []
        var concurrent: (all: UInt64, pss: [Int], privateKiB: [Int])?
        for c in cases {
            fputs("  \(c.label):", stderr)
            let dir = "\(work)/\(c.memoryMiB)-\(c.touchMiB)"
            let (snapshot, creates) = try takeSnapshots(c, dir: dir, guest: guestPath)
            notes.append("\(c.label): memory file \(dataMiB(snapshot + "/memory")) MiB of data in \(c.memoryMiB) MiB, state \(fileSize(snapshot + "/state")) bytes")
            var cold: [UInt64] = [], running: [UInt64] = [], line: [UInt64] = []
            for run in -1..<runs {   // run -1: one uncounted start of each
                for restoring in run % 2 == 0 ? [true, false] : [false, true] {
                    if restoring {
                        let t = try restore(snapshot)
                        if run >= 0 { running.append(t.running); line.append(t.line) }
                    } else {
                        let t = try coldBoot(c, guest: guestPath)
                        if run >= 0 { cold.append(t) }
                    }
                }
                fputs(" \(run + 2)/\(runs + 1)", stderr)
            }
            fputs("\n", stderr)
            let ratio = format(Double(percentile(line.sorted(), 0.5)) / Double(percentile(cold.sorted(), 0.5)), 3)
            add(c.label, "snapshot create (paused VM → 204)", creates)
            add(c.label, "cold boot: exec → first guest line", cold)
            add(c.label, "restore: exec → vCPUs running", running)
            add(c.label, "restore: exec → first guest line", line, ratio: ratio)
            if clones > 0 && c.memoryMiB == memories[0] && c.touchMiB == 0 { concurrent = try restoreMany(snapshot) }
            try? FileManager.default.removeItem(atPath: dir)
        }

        print("volt-bench snapshot — \(machineSummary())")
        print("volt-vmm: \(volt); guest \(guestPath), cmdline \"\(Self.cmdline) counter.touch_mib=N\", 1 vCPU, log level info")
        print("create: \(runs) snapshots of a running VM by API (PATCH /vm Paused, then timed: PUT /snapshot/create Full, then Resumed); files on \(filesystem(work))")
        print("start: \(runs) runs each, restore and cold boot alternating (who goes first alternates too), 1 uncounted each first;"
              + " times from just before the exec to the log's \"\(Self.running)\" and to the first line on stdout")
        print("  the memory file is in the page cache (it was just written); a restored guest prints its next line on its next timer tick")
        for n in notes { print("  \(n)") }
        print("")
        if let concurrent {
            let label = "\(memories[0]) MiB, light"
            table.rows.append([label, "\(clones) restores at once: first exec → all printed", "1", format(Double(concurrent.all) / 1e6, 2), "", "", ""])
            let pss = concurrent.pss.sorted(), priv = concurrent.privateKiB.sorted()
            table.rows.append([label, "  PSS per restored VM (volt-vmm + launcher), MiB", "\(pss.count)",
                               format(Double(pss[pss.count / 2]) / 1024, 2), "", format(Double(pss.last!) / 1024, 2), ""])
            table.rows.append([label, "  private per restored VM, MiB", "\(priv.count)",
                               format(Double(priv[priv.count / 2]) / 1024, 2), "", format(Double(priv.last!) / 1024, 2), ""])
        }
        print(table.render())
        fflush(stdout)
    }

    /// Boots the counter guest with an API socket, waits until it counts, and takes `runs`
    /// snapshots through the API, timing each create; keeps the first, returns its folder.
    private func takeSnapshots(_ c: Case, dir: String, guest: String) throws -> (String, [UInt64]) {
        guard mkdir(dir, 0o700) == 0 else { throw BenchError("cannot create \(dir): errno \(errno)") }
        let socket = dir + "/api.sock"
        let vmm = try WatchedVMM(volt, ["run", "--api-sock", socket, "--snapshot-dir", dir, "--kernel", guest,
                                        "--cmdline", Self.cmdline + " counter.touch_mib=\(c.touchMiB)", "--memory", "\(c.memoryMiB)"])
        let cleanup = Cleanup.shared.add { vmm.child.stop() }
        defer { Cleanup.shared.run(cleanup) }
        try vmm.waitForAPISocket(socket)
        try vmm.waitForOutput("count=2 ", timeout: 60)
        var creates: [UInt64] = []
        for n in 0..<max(runs, 1) {
            let snapshot = "\(dir)/snap\(n)"
            guard mkdir(snapshot, 0o700) == 0 else { throw BenchError("cannot create \(snapshot): errno \(errno)") }
            try put(socket, "PATCH", "/vm", #"{"state": "Paused"}"#)
            let t0 = now()
            try put(socket, "PUT", "/snapshot/create",
                    #"{"snapshot_type": "Full", "snapshot_path": "\#(snapshot)/state", "mem_file_path": "\#(snapshot)/memory"}"#)
            creates.append(now() - t0)
            try put(socket, "PATCH", "/vm", #"{"state": "Resumed"}"#)
            if n > 0 { try? FileManager.default.removeItem(atPath: snapshot) }
        }
        return (dir + "/snap0", creates)
    }

    private func put(_ socket: String, _ method: String, _ path: String, _ body: String) throws {
        let answer = try HTTPClient.request(socketPath: socket, method: method, path: path, body: Array(body.utf8), timeout: .seconds(120))
        guard answer.status == 204 else { throw BenchError("\(method) \(path): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))") }
    }

    private func coldBoot(_ c: Case, guest: String) throws -> UInt64 {
        let vmm = try WatchedVMM(volt, ["run", "--kernel", guest, "--cmdline", Self.cmdline + " counter.touch_mib=\(c.touchMiB)",
                                        "--memory", "\(c.memoryMiB)", "--log-level", "info"])
        let cleanup = Cleanup.shared.add { vmm.child.stop() }
        defer { Cleanup.shared.run(cleanup) }
        let line = try vmm.firstLine()
        guard line.text.hasPrefix("VOLT-GUEST counter: region=") else { throw BenchError("cold boot printed \"\(line.text)\" first") }
        return line.at - vmm.started
    }

    private func restore(_ snapshot: String) throws -> (running: UInt64, line: UInt64) {
        let vmm = try WatchedVMM(volt, ["run", "--restore", snapshot, "--log-level", "info"])
        let cleanup = Cleanup.shared.add { vmm.child.stop() }
        defer { Cleanup.shared.run(cleanup) }
        let line = try vmm.firstLine()
        // The snapshot may have caught the guest mid-line: then the first line is that line's rest.
        guard line.text.hasSuffix(" check=ok kvm_ms=" + (line.text.split(separator: "=").last ?? "")) else {
            throw BenchError("the restored guest printed \"\(line.text)\" first")
        }
        return (try vmm.logTime(of: Self.running) - vmm.started, line.at - vmm.started)
    }

    /// `clones` restores of one snapshot started together: time from the first exec until
    /// every one printed; then, all running, each one's PSS and private memory.
    private func restoreMany(_ snapshot: String) throws -> (all: UInt64, pss: [Int], privateKiB: [Int]) {
        fputs("  \(clones) restores at once\n", stderr)
        let t0 = now()
        var vmms: [WatchedVMM] = []
        let cleanup = Cleanup.shared.add { for v in vmms { kill(v.child.process.processIdentifier, SIGTERM) } }
        defer {
            Cleanup.shared.run(cleanup)
            for v in vmms { _ = v.finish() }
        }
        for _ in 0..<clones { vmms.append(try WatchedVMM(volt, ["run", "--restore", snapshot])) }
        var last: UInt64 = 0
        for v in vmms { last = max(last, try v.firstLine().at) }
        var pss: [Int] = [], priv: [Int] = []
        for v in vmms {
            let pids = [v.child.process.processIdentifier] + children(of: v.child.process.processIdentifier)
            let rollups = pids.map(memoryRollup)
            pss.append(rollups.reduce(0) { $0 + $1.pss })
            priv.append(rollups.reduce(0) { $0 + $1.privateKiB })
        }
        return (last - t0, pss, priv)
    }
}

/// Pss and Private_Clean + Private_Dirty of one process, KiB (/proc/PID/smaps_rollup).
func memoryRollup(_ pid: pid_t) -> (pss: Int, privateKiB: Int) {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return (0, 0) }
    var pss = 0, priv = 0
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2, let kib = Int(parts[1]) else { continue }
        switch parts[0] {
        case "Pss:": pss = kib
        case "Private_Clean:", "Private_Dirty:": priv += kib
        default: break
        }
    }
    return (pss, priv)
}

/// The direct children of `pid` (volt-vmm's launcher).
func children(of pid: pid_t) -> [pid_t] {
    ((try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? "")
        .split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

/// Bytes of data (not holes) in a sparse file, in MiB with one digit.
private func dataMiB(_ path: String) -> String {
    var st = stat()
    guard stat(path, &st) == 0 else { return "?" }
    return format(Double(st.st_blocks) * 512 / 1_048_576, 1)
}

private func fileSize(_ path: String) -> String {
    var st = stat()
    return stat(path, &st) == 0 ? "\(st.st_size)" : "?"
}

/// The file-system type `path` is on ("ext4", "tmpfs"), from /proc/self/mounts' longest prefix.
private func filesystem(_ path: String) -> String {
    let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
    var best = ("", "?")
    for line in mounts.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count > 2 else { continue }
        let point = String(f[1])
        if (path == point || path.hasPrefix(point == "/" ? "/" : point + "/")) && point.count > best.0.count { best = (point, String(f[2])) }
    }
    return best.1
}
