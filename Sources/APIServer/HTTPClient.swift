/// One request on a fresh connection, closed after the answer (`volt-vmm ctl`, tests).
public enum HTTPClient {
    /// `body`, if given, is sent as application/json with its Content-Length. `timeout`
    /// bounds the exchange.
    public static func request(
        socketPath: String, method: String, path: String, body: [UInt8]? = nil,
        timeout: Duration = .seconds(10)
    ) throws(APIServerError) -> (status: Int, body: [UInt8]) {
        _ = try HTTPConnection.requestBytes(method: method, path: path, body: body, closing: true)   // before connecting
        let answer = try HTTPConnection(socketPath: socketPath)
            .request(method: method, path: path, body: body, closing: true, timeout: timeout)
        return (answer.status, answer.body)
    }
}
