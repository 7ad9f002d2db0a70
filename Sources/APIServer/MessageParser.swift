import CHTTPParser

/// Largest request or response head (start line + header fields), enforced by
/// libhttp-parser itself (HPE_HEADER_OVERFLOW). Its limit is process-wide; only this
/// module uses the library, and every parser wants the same value.
let maxHeadBytes: UInt32 = 8 * 1024
private let headLimitInstalled: Void = http_parser_set_max_header_size(maxHeadBytes)

/// One HTTP/1.x message at a time, framed by libhttp-parser: start line, headers,
/// Content-Length or chunked body, keep-alive. This class only collects what the
/// callbacks hand over, and stops (pauses the parser) after each complete message, so a
/// pipelined next message stays unparsed until `startNextMessage()`.
final class MessageParser {
    enum Kind { case request, response }

    enum Failure: Equatable {
        /// The parser rejected the bytes (its errno name and description).
        case malformed(String)
        case headTooLarge
        /// Content-Length (or the chunks so far) above the limit.
        case bodyTooLarge(UInt64)
        /// End of stream inside a message.
        case truncated
    }

    private let parser: UnsafeMutablePointer<http_parser>
    private let settings: UnsafeMutablePointer<http_parser_settings>
    let maxBody: Int

    private(set) var target: [UInt8] = []
    private(set) var headers = HTTPHeaders()
    private(set) var body: [UInt8] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var inValue = false
    /// A byte of the current message (other than blank lines before it) was parsed.
    private(set) var started = false
    private(set) var headersComplete = false
    private(set) var complete = false
    private(set) var keepAlive = false
    private(set) var failure: Failure?

    init(_ kind: Kind, maxBody: Int) {
        _ = headLimitInstalled
        self.maxBody = max(0, maxBody)
        parser = .allocate(capacity: 1)
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        settings = .allocate(capacity: 1)
        settings.initialize(to: http_parser_settings())
        settings.pointee.on_message_begin = { p in MessageParser.owner(p)?.messageBegin() ?? -1 }
        settings.pointee.on_url = { p, at, n in MessageParser.owner(p)?.targetData(at, n) ?? -1 }
        settings.pointee.on_header_field = { p, at, n in MessageParser.owner(p)?.headerField(at, n) ?? -1 }
        settings.pointee.on_header_value = { p, at, n in MessageParser.owner(p)?.headerValue(at, n) ?? -1 }
        settings.pointee.on_headers_complete = { p in MessageParser.owner(p)?.headersDone() ?? -1 }
        settings.pointee.on_body = { p, at, n in MessageParser.owner(p)?.bodyData(at, n) ?? -1 }
        settings.pointee.on_message_complete = { p in MessageParser.owner(p)?.messageDone() ?? -1 }
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
        settings.deallocate()
    }

    /// Parses from the start of `bytes` and returns how many it consumed: all of them,
    /// unless the message completed (the rest belongs to the next one) or failed.
    func feed(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard failure == nil, !complete, let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        let n = http_parser_execute(parser, settings, base.assumingMemoryBound(to: CChar.self), bytes.count)
        checkErrno()
        return n
    }

    /// The peer closed its side: completes a response that runs until EOF, or marks a
    /// message that had begun as truncated.
    func finish() {
        guard failure == nil, !complete else { return }
        _ = http_parser_execute(parser, settings, nil, 0)
        if !complete && started { failure = .truncated }
    }

    /// Forgets the message just completed and lets the parser go on with the next one.
    func startNextMessage() {
        target = []
        headers = HTTPHeaders()
        body = []
        field = []
        value = []
        inValue = false
        started = false
        headersComplete = false
        complete = false
        keepAlive = false
        http_parser_pause(parser, 0)
    }

    var method: String {
        String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
    }
    var status: Int { Int(parser.pointee.status_code) }
    /// Upgrade header or CONNECT: the bytes after this message are not HTTP.
    var upgrade: Bool { parser.pointee.upgrade != 0 }
    var httpMinor: Int { Int(parser.pointee.http_minor) }

    /// The request target split by http_parser_parse_url; the raw target as path if it
    /// does not parse (e.g. "*").
    func pathAndQuery() -> (path: String, query: String?) {
        var url = http_parser_url()
        http_parser_url_init(&url)
        let isConnect: CInt = parser.pointee.method == HTTP_CONNECT.rawValue ? 1 : 0
        let r = target.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { http_parser_parse_url($0.baseAddress, $0.count, isConnect, &url) }
        }
        guard r == 0 else { return (String(decoding: target, as: UTF8.self), nil) }
        func part(_ f: http_parser_url_fields) -> String? {
            let i = Int(f.rawValue)
            guard url.field_set & (1 << i) != 0 else { return nil }
            let off = Int(volt_http_url_field_offset(&url, CInt(i)))
            let len = Int(volt_http_url_field_length(&url, CInt(i)))
            guard off + len <= target.count else { return nil }
            return String(decoding: target[off..<(off + len)], as: UTF8.self)
        }
        return (part(UF_PATH) ?? "/", part(UF_QUERY))
    }

    // MARK: - callbacks (0 = go on, anything else stops the parser with an error)

    private static func owner(_ p: UnsafeMutablePointer<http_parser>?) -> MessageParser? {
        guard let data = p?.pointee.data else { return nil }
        return Unmanaged<MessageParser>.fromOpaque(data).takeUnretainedValue()
    }

    private func messageBegin() -> CInt {
        started = true
        return 0
    }

    private func targetData(_ at: UnsafePointer<CChar>?, _ n: Int) -> CInt {
        append(&target, at, n)
    }

    private func append(_ buffer: inout [UInt8], _ at: UnsafePointer<CChar>?, _ n: Int) -> CInt {
        guard let at, n > 0 else { return 0 }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: at, count: n))
        return 0
    }

    private func headerField(_ at: UnsafePointer<CChar>?, _ n: Int) -> CInt {
        guard !headersComplete else { return 0 }   // trailers of a chunked body: ignored
        if inValue { commitHeader() }
        return append(&field, at, n)
    }

    private func headerValue(_ at: UnsafePointer<CChar>?, _ n: Int) -> CInt {
        guard !headersComplete else { return 0 }
        inValue = true
        return append(&value, at, n)
    }

    private func commitHeader() {
        if !field.isEmpty || !value.isEmpty {
            headers.add(String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
        field = []
        value = []
        inValue = false
    }

    private func headersDone() -> CInt {
        commitHeader()
        headersComplete = true
        keepAlive = http_should_keep_alive(parser) != 0
        // ULLONG_MAX: no Content-Length. A declared length above the limit is refused
        // before any of the body is read (as micro_http does).
        let declared = parser.pointee.content_length
        if declared != UInt64.max && declared > UInt64(maxBody) {
            failure = .bodyTooLarge(declared)
            http_parser_pause(parser, 1)
        }
        return 0
    }

    private func bodyData(_ at: UnsafePointer<CChar>?, _ n: Int) -> CInt {
        guard body.count + n <= maxBody else {
            failure = .bodyTooLarge(UInt64(body.count + n))
            return -1
        }
        return append(&body, at, n)
    }

    private func messageDone() -> CInt {
        complete = true
        keepAlive = http_should_keep_alive(parser) != 0
        http_parser_pause(parser, 1)
        return 0
    }

    /// Turns the parser's errno into `failure`, unless a callback already named it or it
    /// is our own pause after a complete message.
    private func checkErrno() {
        let e = http_errno(rawValue: parser.pointee.http_errno)
        guard failure == nil, e != HPE_OK, !(e == HPE_PAUSED && complete) else { return }
        if e == HPE_HEADER_OVERFLOW {
            failure = .headTooLarge
        } else {
            failure = .malformed("\(String(cString: http_errno_description(e))) (\(String(cString: http_errno_name(e))))")
        }
    }
}
