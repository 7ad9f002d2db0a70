import Foundation
import Testing
@testable import APIServer

@Suite struct HTTPResponseTests {
    private func text(_ r: HTTPResponse, closing: Bool = false, includeBody: Bool = true) -> String {
        String(decoding: r.serialized(closing: closing, includeBody: includeBody), as: UTF8.self)
    }

    @Test func noContentHasNoBodyFraming() {
        #expect(text(.noContent()) == "HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n")
    }

    @Test func jsonCarriesTypeAndLength() {
        #expect(text(.json(200, Array("{}".utf8))) ==
            "HTTP/1.1 200 OK\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
            + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test func emptyNon204StillSaysContentLengthZero() {
        // Without it a keep-alive client could not tell where the answer ends.
        #expect(text(HTTPResponse(status: 200)).hasSuffix("Content-Length: 0\r\n\r\n"))
    }

    @Test func closingSaysConnectionClose() {
        #expect(text(.fault(message: "x"), closing: true).contains("\r\nConnection: close\r\n"))
    }

    @Test func faultIsFirecrackersBody() {
        let r = HTTPResponse.fault(message: "The requested resource does not exist.")
        #expect(r.status == 400)
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"fault_message":"The requested resource does not exist."}"#)
        #expect(HTTPResponse.fault(503, message: "busy").status == 503)
    }

    @Test func extraHeadersAndContentType() {
        let r = HTTPResponse(status: 405, headers: HTTPHeaders([("Allow", "GET, PUT"), ("content-length", "99"),
                                                                ("Content-Type", "text/plain")]), body: [0x41])
        #expect(text(r) == "HTTP/1.1 405 Method Not Allowed\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
            + "Allow: GET, PUT\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nA")
    }

    @Test func headOmitsTheBodyButNotItsLength() {
        #expect(text(.json(200, [1, 2, 3]), includeBody: false).hasSuffix("Content-Length: 3\r\n\r\n"))
    }

    @Test func headerValuesCannotSplitTheResponse() {
        let r = HTTPResponse(status: 200, reason: "OK\r\nX-Evil: 1", headers: HTTPHeaders([("X-A", "b\r\n\r\nc")]))
        let t = text(r)
        #expect(!t.contains("\r\nX-Evil"))
        #expect(t.contains("X-A: b  c\r\n"))
    }

    @Test func absurdStatusBecomes500() {
        #expect(text(HTTPResponse(status: 7)).hasPrefix("HTTP/1.1 500 "))
    }

    @Test(arguments: [
        "plain", "quote \" and backslash \\", "newline\n tab\t cr\r bs\u{8} ff\u{C}",
        String((0..<32).map { Character(Unicode.Scalar($0)!) }), "del \u{7F}", "ü 日本語 🚀 \u{2028}",
        "\\u0000 is not an escape here", "",
    ])
    func faultEscapingIsValidJSON(_ message: String) throws {
        let body = HTTPResponse.fault(message: message).body
        let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        #expect(object?["fault_message"] as? String == message)
        #expect(!body.contains { $0 < 0x20 })   // control characters never raw
    }

    @Test func headerLookupIgnoresCase() {
        let h = HTTPHeaders([("Content-Length", "3"), ("X-A", "1"), ("x-a", "2")])
        #expect(h["content-length"] == "3")
        #expect(h["X-A"] == "1")
        #expect(h["missing"] == nil)
        #expect(h.count == 3)
    }
}
