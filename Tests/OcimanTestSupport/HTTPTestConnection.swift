import NIOCore
import NIOPosix
import Synchronization

/// One raw HTTP/1.1 client connection over TCP or a unix socket, for transport tests.
///
/// Unlike URLSession it shows what the server does on the wire: whether it keeps the
/// connection open between requests, when each chunk of a streamed response arrives, what
/// happens when a body comes in slow pieces or the client leaves mid-response. The socket
/// runs on NIO's event loops, so waiting for the server never blocks the cooperative pool
/// (on two cores a blocking read could starve the server's own handler tasks).
///
/// Requests and responses are strictly sequential: send one, read its response, then the next.
public actor HTTPTestConnection {
    public enum Endpoint: Sendable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    public struct Head: Sendable {
        public var version: String
        public var status: Int
        public var reason: String
        /// In arrival order, names as sent.
        public var headers: [(name: String, value: String)]
        public var receivedAt: ContinuousClock.Instant

        /// The first value of a header, case-insensitively.
        public func header(_ name: String) -> String? {
            let wanted = name.lowercased()
            return headers.first { $0.name.lowercased() == wanted }?.value
        }

        /// Whether the server announced it keeps the connection open after this response.
        public var keepAlive: Bool {
            let tokens = (header("Connection") ?? "").lowercased().split(separator: ",").map {
                trimmed($0)
            }
            if tokens.contains("close") { return false }
            return version == "HTTP/1.1" || tokens.contains("keep-alive")
        }

        public var isChunked: Bool { header("Transfer-Encoding")?.lowercased().contains("chunked") ?? false }
    }

    /// A piece of a response body: one HTTP chunk of a chunked body, otherwise what one read
    /// returned. `arrivedAt` is when its last byte came off the socket.
    public struct Chunk: Sendable {
        public var bytes: [UInt8]
        public var arrivedAt: ContinuousClock.Instant
    }

    public struct Response: Sendable {
        public var head: Head
        public var chunks: [Chunk]
        public var body: [UInt8] { chunks.flatMap(\.bytes) }
        public var status: Int { head.status }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public func header(_ name: String) -> String? { head.header(name) }
    }

    public enum ClientError: Error, CustomStringConvertible {
        case timeout(String)
        /// The server closed the connection while a response was expected or incomplete.
        case closedByServer(String)
        case malformed(String)
        case connectFailed(String)

        public var description: String {
            switch self {
            case .timeout(let what): "timed out waiting for \(what)"
            case .closedByServer(let what): "server closed the connection \(what)"
            case .malformed(let what): "malformed response: \(what)"
            case .connectFailed(let what): "connect failed: \(what)"
            }
        }
    }

    private enum BodyState {
        case idle
        case fixed(remaining: Int)
        case chunked
        case untilClose
    }

    public let endpoint: Endpoint
    public let defaultTimeout: Duration
    private let channel: any Channel
    private let inbox: Inbox
    /// Received bytes not parsed yet: `buffer[offset...]`.
    private var buffer: [UInt8] = []
    private var offset = 0
    private var lastArrival = ContinuousClock.now
    private var body = BodyState.idle
    /// Methods of requests sent and not yet answered, oldest first (HEAD answers have no body).
    private var pendingMethods: [String] = []

    private init(endpoint: Endpoint, channel: any Channel, inbox: Inbox, timeout: Duration) {
        self.endpoint = endpoint
        self.channel = channel
        self.inbox = inbox
        self.defaultTimeout = timeout
    }

    public static func connect(to endpoint: Endpoint, timeout: Duration = .seconds(10)) async throws
        -> HTTPTestConnection
    {
        let inbox = Inbox()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(timeout.components.seconds * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox))
                }
            }
        let channel: any Channel
        do {
            switch endpoint {
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw ClientError.connectFailed("\(endpoint): \(error)")
        }
        return HTTPTestConnection(endpoint: endpoint, channel: channel, inbox: inbox, timeout: timeout)
    }

    public static func connect(host: String = "127.0.0.1", port: Int, timeout: Duration = .seconds(10)) async throws
        -> HTTPTestConnection
    {
        try await connect(to: .tcp(host: host, port: port), timeout: timeout)
    }

    public static func connect(unixPath: String, timeout: Duration = .seconds(10)) async throws -> HTTPTestConnection {
        try await connect(to: .unix(path: unixPath), timeout: timeout)
    }

    // MARK: - Sending

    /// Writes a request head. `Host` is added unless given; no body framing is added, so pass
    /// `Content-Length` or `Transfer-Encoding: chunked` yourself when a body follows.
    public func sendHead(_ method: String, _ target: String, headers: [(String, String)] = []) async throws {
        var text = "\(method) \(target) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { text += "Host: localhost\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        pendingMethods.append(method)
        try await write(Array(text.utf8))
    }

    /// Writes raw bytes (a body piece, or anything else) and flushes them.
    public func write(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Writes one chunk of a chunked request body (empty chunks are skipped: size 0 ends the body).
    public func writeChunk(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        try await write(Array("\(String(bytes.count, radix: 16))\r\n".utf8) + bytes + Array("\r\n".utf8))
    }

    /// Ends a chunked request body.
    public func finishChunkedBody() async throws {
        try await write(Array("0\r\n\r\n".utf8))
    }

    /// Writes a whole request; a body goes with `Content-Length`.
    public func send(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) async throws {
        var headers = headers
        if let body { headers.append(("Content-Length", String(body.count))) }
        try await sendHead(method, target, headers: headers)
        if let body, !body.isEmpty { try await write(body) }
    }

    /// Writes a request whose body goes out in `pieces` parts with `delay` before each part
    /// after the first: with `Content-Length`, or with chunked encoding (one chunk a part).
    public func sendInPieces(
        _ method: String,
        _ target: String,
        headers: [(String, String)] = [],
        body: [UInt8],
        pieces: Int,
        delay: Duration,
        chunked: Bool = false
    ) async throws {
        var headers = headers
        headers.append(chunked ? ("Transfer-Encoding", "chunked") : ("Content-Length", String(body.count)))
        try await sendHead(method, target, headers: headers)
        let size = max(1, (body.count + pieces - 1) / max(1, pieces))
        var start = 0
        while start < body.count {
            if start > 0 { try await Task.sleep(for: delay) }
            let piece = Array(body[start..<min(body.count, start + size)])
            if chunked { try await writeChunk(piece) } else { try await write(piece) }
            start += piece.count
        }
        if chunked { try await finishChunkedBody() }
    }

    /// Sends a request and reads its whole response.
    public func request(
        _ method: String,
        _ target: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration? = nil
    ) async throws -> Response {
        try await send(method, target, headers: headers, body: body)
        return try await readResponse(timeout: timeout)
    }

    // MARK: - Receiving

    /// Reads the next response head (skipping `100 Continue`); the body is read next.
    public func readHead(timeout: Duration? = nil) async throws -> Head {
        let deadline = ContinuousClock.now.advanced(by: timeout ?? defaultTimeout)
        if case .idle = body {} else { try await skipBody(deadline: deadline) }
        while true {
            var lines: [String] = []
            while true {
                guard let line = try await readLine(deadline: deadline, what: "a response head") else {
                    throw ClientError.closedByServer("before a response head arrived")
                }
                if line.isEmpty { break }
                lines.append(line)
            }
            let statusLine = lines.first ?? ""
            let words = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard words.count >= 2, words[0].hasPrefix("HTTP/"), let status = Int(words[1]) else {
                throw ClientError.malformed("status line \"\(statusLine)\"")
            }
            var headers: [(name: String, value: String)] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { throw ClientError.malformed("header \"\(line)\"") }
                headers.append((String(line[..<colon]), trimmed(line[line.index(after: colon)...])))
            }
            let head = Head(
                version: String(words[0]), status: status, reason: words.count > 2 ? String(words[2]) : "",
                headers: headers, receivedAt: lastArrival)
            if (100..<200).contains(status) && status != 101 { continue }
            let method = pendingMethods.isEmpty ? "GET" : pendingMethods.removeFirst()
            if method == "HEAD" || status == 204 || status == 304 || status == 101 {
                body = .idle
            } else if head.isChunked {
                body = .chunked
            } else if let length = head.header("Content-Length").flatMap(Int.init) {
                body = .fixed(remaining: length)
            } else {
                body = .untilClose
            }
            return head
        }
    }

    /// The next piece of the current response's body, or nil once it is complete.
    public func readBodyChunk(timeout: Duration? = nil) async throws -> Chunk? {
        try await nextBodyChunk(deadline: ContinuousClock.now.advanced(by: timeout ?? defaultTimeout))
    }

    /// Reads a whole response: the head and every body chunk. `timeout` bounds all of it.
    public func readResponse(timeout: Duration? = nil) async throws -> Response {
        let deadline = ContinuousClock.now.advanced(by: timeout ?? defaultTimeout)
        let head = try await readHead(timeout: ContinuousClock.now.duration(to: deadline))
        var chunks: [Chunk] = []
        while let chunk = try await nextBodyChunk(deadline: deadline) { chunks.append(chunk) }
        return Response(head: head, chunks: chunks)
    }

    // MARK: - Connection state

    /// True once the server closed the connection (seen or queued for reading).
    public var serverClosed: Bool { offset == buffer.count && inbox.isClosed }

    /// Waits up to `timeout` for the server to close the connection; false if it stayed open.
    /// Only meaningful between responses: unread response bytes count as "still open".
    public func waitForServerClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while offset == buffer.count {
            do {
                guard try await pull(deadline: deadline, what: "") else { return true }
            } catch {
                return false
            }
        }
        return false
    }

    /// Closes the connection from the client side (a client leaving mid-response).
    public func close() async {
        try? await channel.close().get()
    }

    // MARK: - Parsing

    private func nextBodyChunk(deadline: ContinuousClock.Instant) async throws -> Chunk? {
        switch body {
        case .idle:
            return nil
        case .fixed(let remaining):
            if remaining == 0 {
                body = .idle
                return nil
            }
            if offset == buffer.count, try await !pull(deadline: deadline, what: "the response body") {
                throw ClientError.closedByServer("with \(remaining) body bytes missing")
            }
            let take = min(remaining, buffer.count - offset)
            let bytes = Array(buffer[offset..<offset + take])
            offset += take
            body = remaining == take ? .idle : .fixed(remaining: remaining - take)
            return Chunk(bytes: bytes, arrivedAt: lastArrival)
        case .untilClose:
            if offset == buffer.count, try await !pull(deadline: deadline, what: "the response body") {
                body = .idle
                return nil
            }
            let bytes = Array(buffer[offset...])
            offset = buffer.count
            return Chunk(bytes: bytes, arrivedAt: lastArrival)
        case .chunked:
            guard let sizeLine = try await readLine(deadline: deadline, what: "a chunk size") else {
                throw ClientError.closedByServer("inside a chunked body")
            }
            let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map { trimmed($0) } ?? ""
            guard let size = Int(hex, radix: 16), size >= 0 else { throw ClientError.malformed("chunk size \"\(sizeLine)\"") }
            if size == 0 {
                // Trailers, then the empty line.
                while true {
                    guard let line = try await readLine(deadline: deadline, what: "the end of a chunked body") else {
                        throw ClientError.closedByServer("inside chunked trailers")
                    }
                    if line.isEmpty { break }
                }
                body = .idle
                return nil
            }
            while buffer.count - offset < size + 2 {
                guard try await pull(deadline: deadline, what: "a \(size)-byte chunk") else {
                    throw ClientError.closedByServer("inside a \(size)-byte chunk")
                }
            }
            let bytes = Array(buffer[offset..<offset + size])
            guard buffer[offset + size] == 0x0D, buffer[offset + size + 1] == 0x0A else {
                throw ClientError.malformed("chunk not followed by CRLF")
            }
            offset += size + 2
            return Chunk(bytes: bytes, arrivedAt: lastArrival)
        }
    }

    private func skipBody(deadline: ContinuousClock.Instant) async throws {
        while try await nextBodyChunk(deadline: deadline) != nil {}
    }

    /// The next CRLF-terminated line without its terminator; nil when the server closed first.
    private func readLine(deadline: ContinuousClock.Instant, what: String) async throws -> String? {
        // Relative to `offset`: pulling may compact the buffer.
        var searched = 0
        while true {
            if let end = crlf(from: offset + searched) {
                let line = String(decoding: buffer[offset..<end], as: UTF8.self)
                offset = end + 2
                return line
            }
            searched = max(0, buffer.count - offset - 1)
            guard try await pull(deadline: deadline, what: what) else { return nil }
        }
    }

    private func crlf(from start: Int) -> Int? {
        var index = start
        while index + 1 < buffer.count {
            if buffer[index] == 0x0D && buffer[index + 1] == 0x0A { return index }
            index += 1
        }
        return nil
    }

    /// Appends the next received segment to the buffer; false at end of stream.
    private func pull(deadline: ContinuousClock.Instant, what: String) async throws -> Bool {
        if offset > 1 << 16 && offset * 2 > buffer.count {
            buffer.removeFirst(offset)
            offset = 0
        }
        guard let segment = try await inbox.next(deadline: deadline, what: what) else { return false }
        buffer.append(contentsOf: segment.bytes)
        lastArrival = segment.arrivedAt
        return true
    }
}

/// Without surrounding spaces and tabs (header values, tokens).
private func trimmed(_ text: Substring) -> String {
    String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
}

/// Bytes from the event loop to the reading task, stamped with their arrival time.
private final class Inbox: Sendable {
    struct Segment: Sendable {
        var bytes: [UInt8]
        var arrivedAt: ContinuousClock.Instant
    }

    private struct State {
        var segments: [Segment] = []
        var head = 0
        var closed = false
        var failure: (any Error)?
        var waiter: CheckedContinuation<Segment?, any Error>?
    }

    private let state = Mutex(State())

    var isClosed: Bool { state.withLock { $0.closed && $0.head == $0.segments.count } }

    func push(_ bytes: [UInt8]) {
        let segment = Segment(bytes: bytes, arrivedAt: .now)
        let waiter: CheckedContinuation<Segment?, any Error>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.segments.append(segment)
            return nil
        }
        waiter?.resume(returning: segment)
    }

    func finish(_ error: (any Error)? = nil) {
        let waiter: CheckedContinuation<Segment?, any Error>? = state.withLock { state in
            state.closed = true
            if state.failure == nil { state.failure = error }
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    /// The next segment, nil at end of stream; throws `timeout` at the deadline.
    func next(deadline: ContinuousClock.Instant, what: String) async throws -> Segment? {
        try await withThrowingTaskGroup(of: Segment?.self) { group in
            group.addTask { try await self.next() }
            group.addTask {
                try await Task.sleep(until: deadline)
                throw HTTPTestConnection.ClientError.timeout(what)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func next() async throws -> Segment? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Segment?, any Error>) in
                enum Ready { case segment(Segment), end, failure(any Error), cancelled, wait }
                let ready: Ready = state.withLock { state in
                    if state.head < state.segments.count {
                        let segment = state.segments[state.head]
                        state.head += 1
                        if state.head == state.segments.count {
                            state.segments.removeAll(keepingCapacity: true)
                            state.head = 0
                        }
                        return .segment(segment)
                    }
                    if state.closed { return state.failure.map { .failure($0) } ?? .end }
                    if Task.isCancelled { return .cancelled }
                    state.waiter = continuation
                    return .wait
                }
                switch ready {
                case .segment(let segment): continuation.resume(returning: segment)
                case .end: continuation.resume(returning: nil)
                case .failure(let error): continuation.resume(throwing: error)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                let waiter = state.waiter
                state.waiter = nil
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}

private final class InboxHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let inbox: Inbox

    init(inbox: Inbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        inbox.push(Array(buffer.readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset from the server reads like a close; the caller sees the missing bytes.
        inbox.finish()
        context.close(promise: nil)
    }
}
