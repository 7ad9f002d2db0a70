/// A response as the handler returns it; the server adds the framing headers.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var reason: String
    /// Extra headers (e.g. "Allow", "Deprecation"). Server, Connection and Content-Length
    /// here are ignored: the server owns the framing. A Content-Type here replaces
    /// application/json.
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, reason: String? = nil, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? Self.reasonPhrase(status)
        self.headers = headers
        self.body = body
    }

    /// 204, Firecracker's answer to an accepted PUT or PATCH.
    public static func noContent() -> HTTPResponse { HTTPResponse(status: 204) }

    public static func json(_ status: Int, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, body: body)
    }

    /// Firecracker's error body: {"fault_message":"..."} (serde_json's compact form).
    public static func fault(_ status: Int = 400, message: String) -> HTTPResponse {
        json(status, Array("{\"fault_message\":\(JSONString.quoted(message))}".utf8))
    }

    /// The bytes on the wire, header set and order as Firecracker's micro_http sends them:
    ///
    ///     HTTP/1.1 200 OK
    ///     Server: Firecracker API
    ///     Connection: keep-alive            ("close" when the server closes after this)
    ///     <extra headers>
    ///     Content-Type: application/json    (not for 1xx, 204, 304)
    ///     Content-Length: N                 (not for 1xx, 204, 304; also when N is 0)
    ///
    /// micro_http leaves the reason phrase empty ("HTTP/1.1 204 "); we send the standard
    /// one, which every client ignores. `includeBody: false` is for HEAD: framing headers
    /// as for GET, no body bytes.
    public func serialized(closing: Bool, includeBody: Bool = true) -> [UInt8] {
        let code = (100...999).contains(status) ? status : 500
        let framed = !(code < 200 || code == 204 || code == 304)
        var head = "HTTP/1.1 \(code) \(Self.headerSafe(reason))\r\n"
        head += "Server: Firecracker API\r\n"
        head += closing ? "Connection: close\r\n" : "Connection: keep-alive\r\n"
        var contentType = "application/json"
        for field in headers {
            if HTTPHeaders.sameName(field.name, "Content-Type") {
                contentType = Self.headerSafe(field.value)
            } else if !["Server", "Connection", "Content-Length", "Transfer-Encoding"]
                .contains(where: { HTTPHeaders.sameName(field.name, $0) }) {
                head += "\(Self.headerSafe(field.name)): \(Self.headerSafe(field.value))\r\n"
            }
        }
        if framed {
            head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        var out = Array(head.utf8)
        if framed && includeBody { out += body }
        return out
    }

    /// CR and LF in a header would end it early (response splitting): they become spaces.
    private static func headerSafe(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return s }
        return String(s.map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 })
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Payload Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        default: return ""
        }
    }
}
