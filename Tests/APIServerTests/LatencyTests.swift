import Foundation
import Testing
@testable import APIServer

/// Not a benchmark (the machine is shared): prints a rough round-trip time so a large
/// regression shows, and checks every answer arrived.
@Suite struct LatencyTests {
    @Test func thousandSequentialGETsOnOneKeepAliveConnection() throws {
        let s = try TestServer()
        defer { s.stop() }
        let c = try RawClient(s.path)
        let request = Array(get("/").utf8)
        var micros: [Double] = []
        micros.reserveCapacity(1000)
        for _ in 0..<1000 {
            let start = DispatchTime.now().uptimeNanoseconds
            c.send(request)
            guard c.response()?.status == 200 else { Issue.record("no answer"); return }
            micros.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
        micros.sort()
        print("APIServer round trip, 1000 GETs on one connection: median \(Int(micros[500])) µs, "
            + "p99 \(Int(micros[990])) µs, max \(Int(micros[999])) µs")
    }
}
