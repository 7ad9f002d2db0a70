import Glibc

/// One client of the poll loop. It reads and parses one request, has the handler answer
/// it, writes the answer, and only then (keep-alive) parses the next: a pipelined request
/// waits in `pending`. While an answer is being written nothing more is read, so a client
/// that never reads stalls itself (its writes block), not the loop, and the memory held
/// is one request (head ≤ 8 KiB, body ≤ maxPayload), one answer and one read's worth.
///
/// `phase` and `since` are what the loop's limits look at: an idle connection is never
/// timed out (only closed to make room for a new client, the longest-idle first); a
/// receiving or answering one is closed once its phase has lasted the request timeout.
final class Connection {
    let fd: CInt
    private let parser: MessageParser
    /// Read but not parsed yet: the start of a pipelined next request.
    private var pending: [UInt8] = []
    private var output: [UInt8] = []
    private var sent = 0
    private var afterOutput = AfterOutput.nextRequest
    private var continueSent = false
    /// What the connection waits for; updated after every read and write.
    private(set) var phase = Phase.idle
    /// When `phase` began (for `.answering`: when the latest answer was queued). Bytes
    /// that arrive or leave within a phase do not move it, so a client trickling a byte
    /// at a time gets no more time than one sending nothing.
    private(set) var since: UInt64
    private(set) var isClosed = false

    enum Phase {
        /// Between requests: nothing of a request read (blank lines aside), no answer
        /// pending. A keep-alive client may stay like this as long as it likes.
        case idle
        /// Part of a request is in (head or body), the rest is awaited.
        case receiving
        /// An answer is queued and the client has not taken all of it yet.
        case answering
    }

    private enum AfterOutput {
        case nextRequest
        /// "100 Continue" went out: keep reading the same request's body.
        case sameRequest
        case close
    }

    init(fd: CInt, maxPayload: Int, now: UInt64) {
        self.fd = fd
        parser = MessageParser(.request, maxBody: maxPayload)
        since = now
    }

    deinit { close() }

    /// Poll for POLLOUT (an answer is being written) rather than POLLIN.
    var wantsOutput: Bool { sent < output.count }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(fd)
    }

    /// POLLIN, POLLHUP or POLLERR while waiting for request bytes: one read(2). Also
    /// called, without an event, on an idle connection about to be closed to make room,
    /// so a request already in its socket buffer is served rather than reset.
    func readable(into scratch: UnsafeMutableRawBufferPointer, now: UInt64, handler: (HTTPRequest) -> HTTPResponse) {
        let n = read(fd, scratch.baseAddress, scratch.count)
        if n > 0 {
            consume(UnsafeRawBufferPointer(rebasing: scratch[0..<n]), now, handler)
            advance(now: now, handler: handler)
        } else if n == 0 {
            parser.finish()
            if let failure = parser.failure {   // EOF inside a request: answer, if it still listens
                fail(failure, now)
                advance(now: now, handler: handler)
            } else {
                close()
            }
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            close()
        }
        settlePhase(now)
    }

    /// POLLOUT (or an error) while an answer is pending.
    func writable(now: UInt64, handler: (HTTPRequest) -> HTTPResponse) {
        advance(now: now, handler: handler)
        settlePhase(now)
    }

    /// Moves `phase` to what the buffers say, restarting `since` if it changed.
    /// (`queue` restarts it for each answer itself.) A "100 Continue" being written is
    /// part of receiving its request: the request's time runs on.
    private func settlePhase(_ now: UInt64) {
        let current: Phase = wantsOutput && afterOutput != .sameRequest ? .answering
            : (!pending.isEmpty || parser.started) ? .receiving : .idle
        if current != phase {
            phase = current
            since = now
        }
    }

    /// Writes what is pending; once it is out, parses a pipelined request if one is waiting.
    private func advance(now: UInt64, handler: (HTTPRequest) -> HTTPResponse) {
        while !isClosed {
            if wantsOutput {
                guard flush() else { return }
                output = []
                sent = 0
                switch afterOutput {
                case .close:
                    close()
                    return
                case .sameRequest:
                    afterOutput = .nextRequest
                case .nextRequest:
                    parser.startNextMessage()
                    continueSent = false
                }
                continue
            }
            guard !pending.isEmpty else { return }
            let bytes = pending
            pending = []
            bytes.withUnsafeBytes { consume($0, now, handler) }
        }
    }

    /// Feeds `bytes` to the parser; a complete request is answered at once (the answer
    /// is queued), the bytes after it are kept for later.
    private func consume(_ bytes: UnsafeRawBufferPointer, _ now: UInt64, _ handler: (HTTPRequest) -> HTTPResponse) {
        let used = parser.feed(bytes)
        if let failure = parser.failure {
            fail(failure, now)
        } else if parser.complete {
            if used < bytes.count { pending = Array(bytes[used...]) }
            let (path, query) = parser.pathAndQuery()
            let keepAlive = parser.keepAlive && !parser.upgrade
            let request = HTTPRequest(
                method: parser.method, path: path, query: query, headers: parser.headers,
                body: parser.body, keepAlive: keepAlive
            )
            let response = handler(request)
            queue(response.serialized(closing: !keepAlive, includeBody: request.method != "HEAD"),
                  then: keepAlive ? .nextRequest : .close, now)
        } else if parser.headersComplete && !continueSent && parser.httpMinor >= 1,
                  let expect = parser.headers["Expect"], HTTPHeaders.sameName(expect, "100-continue") {
            // curl sends "Expect: 100-continue" before larger bodies and waits a second
            // for this (micro_http answers it too).
            continueSent = true
            queue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), then: .sameRequest, now)
        }
    }

    /// A 400 with the reason, then the connection closes (the stream is out of step).
    private func fail(_ failure: MessageParser.Failure, _ now: UInt64) {
        pending = []
        let message: String
        switch failure {
        case .headTooLarge:
            message = "Request headers are larger than the limit of \(maxHeadBytes) bytes allowed by server."
        case let .bodyTooLarge(size):
            // micro_http's wording and status (400, not 413) for --http-api-max-payload-size.
            message = "Request payload with size \(size) is larger than the limit of \(parser.maxBody) allowed by server."
        case let .malformed(reason):
            message = "Invalid HTTP request: \(reason)."
        case .truncated:
            message = "The connection ended in the middle of a request."
        }
        queue(HTTPResponse.fault(400, message: message).serialized(closing: true), then: .close, now)
    }

    /// A final answer's time starts now (the loop's wake-up, before the handler ran): a
    /// request that took long to arrive does not shorten the time the client has to read it.
    private func queue(_ bytes: [UInt8], then next: AfterOutput, _ now: UInt64) {
        output = bytes
        sent = 0
        afterOutput = next
        if next != .sameRequest {
            phase = .answering
            since = now
        }
    }

    /// True once everything pending is written; false on EAGAIN (poll for POLLOUT) or when
    /// the peer is gone (the connection is then closed).
    private func flush() -> Bool {
        while sent < output.count {
            let n = output.withUnsafeBytes { buf -> Int in
                guard let base = buf.baseAddress else { return 0 }
                return send(fd, base + sent, buf.count - sent, CInt(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return false
            } else {
                close()
                return false
            }
        }
        return true
    }
}
