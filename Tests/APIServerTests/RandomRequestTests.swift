import Foundation
import TestFrontend
import Glibc
import Testing
@testable import APIServer

/// 1,000 seeded random requests: valid ones (random methods, paths, headers, bodies,
/// sizes, chunked or not, split across writes), garbage, truncations, mutations and
/// disconnects. Valid requests must get the right answer, everything else a 400 or a
/// close; afterwards the server still answers normally. Replay a failure with
/// APISERVER_SEED=<seed printed in the failure>.
@Suite struct RandomRequestTests {
    static let maxPayload = 51_200
    private let tally = Counter()
    private let tooLarge = Counter()
    private var answered: Int { tally.value }
    private var refused: Int { tooLarge.value }

    @Test func thousandRandomRequests() throws {
        let seed = ProcessInfo.processInfo.environment["APISERVER_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("RandomRequestTests seed \(seed) (APISERVER_SEED=\(seed) replays it)")
        var rng = SplitMix(state: seed)
        let s = try TestServer(limits: APIServer.Limits(requestTimeout: .seconds(5)))
        defer { s.stop() }

        var kinds = [Int](repeating: 0, count: 10)
        for i in 0..<1000 {
            let context = "seed \(seed), request \(i)"
            let c = try RawClient(s.path)
            let kind = Int(rng.next() % 10)
            kinds[kind] += 1
            switch kind {
            case 0...4:
                try valid(c, &rng, context)
            case 5:
                let bytes = garbage(&rng)
                send(c, bytes, &rng)
                c.shutdownWrite()
                try expectOnlyFaultsThenEOF(c, context, allow200: true)
            case 6:
                let (bytes, _) = validRequest(&rng)
                send(c, Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count)))), &rng)
                c.shutdownWrite()
                try expectOnlyFaultsThenEOF(c, context, allow200: true)
            case 7:
                let (bytes, _) = validRequest(&rng)
                send(c, Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count)))), &rng)
                // and hang up mid-request
            case 8:
                var (bytes, _) = validRequest(&rng)
                for _ in 0...(rng.next() % 4) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                send(c, bytes, &rng)
                c.shutdownWrite()
                try expectOnlyFaultsThenEOF(c, context, allow200: true)
            default:
                let name = "X-" + token(&rng, 1...20)
                let request = "GET / HTTP/1.1\r\n\(name): \(String(repeating: "v", count: 8200))\r\n\r\n"
                send(c, Array(request.utf8), &rng)
                let r = try #require(c.response(), Comment(rawValue: context))
                #expect(r.status == 400 && r.closes, Comment(rawValue: context))
            }
        }

        print("RandomRequestTests: \(kinds[0...4].reduce(0, +)) valid, \(kinds[5]) garbage, \(kinds[6]) truncated, "
            + "\(kinds[7]) hung up, \(kinds[8]) mutated, \(kinds[9]) oversized heads; answers: \(answered) OK, \(refused) 400 for size")
        let c = try RawClient(s.path)
        c.send(put("/after-all", "{}"))
        let j = try #require(c.response()?.json, "seed \(seed)")
        #expect(j["path"] as? String == "/after-all" && j["body_length"] as? Int == 2, "seed \(seed)")
        #expect(s.stop(), "seed \(seed): the loop did not return")
    }

    /// A valid request (or two, pipelined) that must be answered exactly.
    private func valid(_ c: RawClient, _ rng: inout SplitMix, _ context: String) throws {
        let count = rng.next() % 5 == 0 ? 2 : 1
        var expected: [Expected] = []
        var bytes: [UInt8] = []
        for _ in 0..<count {
            let (b, e) = validRequest(&rng)
            bytes += b
            expected.append(e)
            if e.tooLarge || !e.keepAlive { break }
        }
        send(c, bytes, &rng)
        for e in expected {
            let r = try #require(c.response(), Comment(rawValue: "\(context): no answer for \(e)"))
            if e.tooLarge {
                tooLarge.add()
                #expect(r.status == 400 && r.closes, Comment(rawValue: "\(context): \(e)"))
                #expect((r.json?["fault_message"] as? String)?.contains("larger than the limit") == true, Comment(rawValue: context))
                return
            }
            let j = r.json ?? [:]
            tally.add()
            #expect(r.status == 200, Comment(rawValue: "\(context): \(e)"))
            #expect(j["method"] as? String == e.method, Comment(rawValue: "\(context): \(e)"))
            #expect(j["path"] as? String == e.path, Comment(rawValue: "\(context): \(e)"))
            #expect(j["query"] as? String == e.query, Comment(rawValue: "\(context): \(e)"))
            #expect(j["body_length"] as? Int == e.bodyLength, Comment(rawValue: "\(context): \(e)"))
            #expect(j["body_sum"] as? Int == e.bodySum, Comment(rawValue: "\(context): \(e)"))
            #expect(r.closes == !e.keepAlive, Comment(rawValue: "\(context): \(e)"))
        }
    }

    private struct Expected: CustomStringConvertible {
        var method: String
        var path: String
        var query: String?
        var bodyLength: Int
        var bodySum: Int
        var keepAlive: Bool
        var chunked: Bool
        var tooLarge: Bool { bodyLength > RandomRequestTests.maxPayload }
        var description: String {
            "\(method) \(path)?\(query ?? "-") body \(bodyLength)\(chunked ? " chunked" : "") keepAlive \(keepAlive)"
        }
    }

    private func validRequest(_ rng: inout SplitMix) -> ([UInt8], Expected) {
        let methods = ["GET", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"]
        let method = methods[Int(rng.next() % UInt64(methods.count))]
        let pathChars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/")
        var path = "/"
        for _ in 0..<(rng.next() % 120) { path.append(pathChars[Int(rng.next() % UInt64(pathChars.count))]) }
        let query: String? = rng.next() % 3 == 0 ? "q=" + token(&rng, 0...30) + "&x=1" : nil
        let bodyLength: Int
        switch rng.next() % 10 {
        case 0...5: bodyLength = Int(rng.next() % 200)
        case 6...8: bodyLength = Int(rng.next() % 20_000)
        default: bodyLength = Int(rng.next() % 70_000)   // about a quarter of these are over the limit
        }
        let body = (0..<bodyLength).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let keepAlive = rng.next() % 4 != 0
        let http10 = !keepAlive && rng.next() % 2 == 0
        let chunked = !http10 && bodyLength > 0 && rng.next() % 4 == 0

        var head = "\(method) \(path)\(query.map { "?" + $0 } ?? "") HTTP/1.\(http10 ? 0 : 1)\r\n"
        for _ in 0..<(rng.next() % 8) {
            let value = String((0..<(rng.next() % 60)).map { _ in Character(Unicode.Scalar(UInt8(0x20 + rng.next() % 95))) })
            head += "X-\(token(&rng, 1...16)): \(value)\r\n"
        }
        if !keepAlive && !http10 { head += "Connection: close\r\n" }
        if keepAlive && http10 { head += "Connection: keep-alive\r\n" }
        var bytes: [UInt8]
        if chunked {
            head += "Transfer-Encoding: chunked\r\n\r\n"
            bytes = Array(head.utf8)
            var at = 0
            while at < body.count {
                let n = min(body.count - at, 1 + Int(rng.next() % 5000))
                bytes += Array((String(n, radix: 16) + "\r\n").utf8) + body[at..<(at + n)] + [0x0D, 0x0A]
                at += n
            }
            bytes += Array("0\r\n\r\n".utf8)
        } else {
            if bodyLength > 0 || rng.next() % 2 == 0 { head += "Content-Length: \(bodyLength)\r\n" }
            bytes = Array((head + "\r\n").utf8) + body
        }
        let expected = Expected(method: method, path: path, query: query, bodyLength: bodyLength,
                                bodySum: body.reduce(0) { $0 &+ Int($1) }, keepAlive: keepAlive, chunked: chunked)
        return (bytes, expected)
    }

    private func token(_ rng: inout SplitMix, _ length: ClosedRange<Int>) -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
        let n = length.lowerBound + Int(rng.next() % UInt64(length.count))
        return String((0..<n).map { _ in chars[Int(rng.next() % UInt64(chars.count))] })
    }

    private func garbage(_ rng: inout SplitMix) -> [UInt8] {
        let n = 1 + Int(rng.next() % 3000)
        if rng.next() % 2 == 0 {
            return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        // Mostly HTTP-looking pieces in a random order.
        let pieces = ["GET ", "PUT ", "/", " HTTP/1.1", "\r\n", "\r\n\r\n", ": ", "Content-Length: ",
                      "Transfer-Encoding: chunked", "99999999999999999999", "\0", " ", "\n", "ffff\r\n"]
        var out: [UInt8] = []
        while out.count < n { out += Array(pieces[Int(rng.next() % UInt64(pieces.count))].utf8) }
        return out
    }

    /// Sends in 1 to 6 pieces, sometimes pausing between them so the server sees them apart.
    private func send(_ c: RawClient, _ bytes: [UInt8], _ rng: inout SplitMix) {
        guard !bytes.isEmpty else { return }
        var cuts = (0..<(rng.next() % 6)).map { _ in Int(rng.next() % UInt64(bytes.count)) }
        cuts = ([0] + cuts.sorted() + [bytes.count])
        let pause = rng.next() % 4 == 0
        for k in 0..<(cuts.count - 1) where cuts[k] < cuts[k + 1] {
            guard c.send(Array(bytes[cuts[k]..<cuts[k + 1]])) else { return }   // server closed: fine
            if pause { usleep(300) }
        }
    }

    /// Whatever comes back parses as HTTP answers, each a 400 (or a 200 if the bytes
    /// happened to be a valid request), and then the server closes.
    private func expectOnlyFaultsThenEOF(_ c: RawClient, _ context: String, allow200: Bool = false) throws {
        while let r = c.response(timeout: 5) {
            #expect(r.status == 400 || (allow200 && r.status == 200), Comment(rawValue: "\(context): status \(r.status)"))
        }
        #expect(c.sawEOF, Comment(rawValue: "\(context): the server did not close"))
    }
}
