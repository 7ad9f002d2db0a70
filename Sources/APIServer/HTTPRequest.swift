/// One complete request, as libhttp-parser framed it.
public struct HTTPRequest: Sendable, Equatable {
    /// "GET", "PUT", ... as the parser names it.
    public var method: String
    /// The target's path, still percent-encoded, without query or fragment
    /// ("/drives/rootfs"; an absolute-form target "http://localhost/x" gives "/x").
    public var path: String
    /// What follows "?" in the target, nil if there is no "?".
    public var query: String?
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// http_should_keep_alive: HTTP/1.1 without "Connection: close", or HTTP/1.0 with
    /// "Connection: keep-alive". False means the server closes after answering.
    public var keepAlive: Bool

    public init(
        method: String, path: String, query: String? = nil, headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [], keepAlive: Bool = true
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }
}
