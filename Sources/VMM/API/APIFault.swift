/// A request the API refuses: Firecracker's `400 {"fault_message": "..."}`. The message
/// names what is wrong and how to fix it.
public struct APIFault: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The problems a strict reader found in a body, in one message: the first few, each
    /// cut to a line (a hostile body must not make a fault many times its size).
    init(_ reader: ConfigReader) {
        let shown = reader.problems.prefix(Self.problemsShown).map { $0.count > 300 ? $0.prefix(300) + "..." : $0 }
        let more = reader.problems.count - shown.count
        message = shown.joined(separator: "; ") + (more > 0 ? "; and \(more) more" : "")
    }

    static let problemsShown = 5

    /// Firecracker's rule: the configuration is fixed once InstanceStart was accepted.
    static func notAllowed(_ what: String, starting: Bool) -> APIFault {
        starting ? APIFault("\(what) is not allowed while the microVM is starting")
                 : APIFault("\(what) is not allowed after the microVM started (only before InstanceStart)")
    }
}

/// Parses a request body strictly: JSON, one object, only `allowed` keys (unknown fields
/// are refused, as Firecracker refuses them), then `read` takes the fields; any problem
/// found on the way becomes the fault.
func parseBody<T>(_ body: [UInt8], allowed: Set<String>, _ read: (ConfigReader, [String: JSONValue]) -> T?) throws(APIFault) -> T {
    let value: JSONValue
    do { value = try JSONValue.parse(body) } catch {
        throw APIFault("the request body is not valid JSON (\(body.isEmpty ? "it is empty" : "\(error)"))")
    }
    let reader = ConfigReader()
    guard let fields = reader.object(value, "", allowed: allowed) else { throw APIFault(reader) }
    let result = read(reader, fields)
    guard reader.problems.isEmpty, let result else {
        throw reader.problems.isEmpty ? APIFault("the request body is incomplete") : APIFault(reader)
    }
    return result
}
