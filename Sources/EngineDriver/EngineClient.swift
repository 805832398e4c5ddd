import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// HTTP/1.1 client for one engine (over any `EngineTransport`): keep-alive connection pool,
/// version negotiation, deadlines, streamed bodies and connection hijacking. `.unversioned`
/// requests skip the negotiation, which makes it a plain HTTP/1.1 client for any server a
/// transport reaches (OcimanClient's transport uses it that way).
public final class EngineClient: Sendable {
    public let transport: any EngineTransport
    public let defaultTimeout: Duration
    /// The swift-metrics label of the request-latency histogram; nil records nothing.
    private let latencyMetric: String?
    private let group: any EventLoopGroup
    private let idle = Mutex<[PooledConnection]>([])
    private let negotiated = Mutex<Ping?>(nil)
    private static let maxIdleConnections = 16

    public init(transport: any EngineTransport, defaultTimeout: Duration = .seconds(30), latencyMetric: String? = nil) {
        self.transport = transport
        self.defaultTimeout = defaultTimeout
        self.latencyMetric = latencyMetric
        self.group = MultiThreadedEventLoopGroup.singleton
    }

    public convenience init(socketPath: String, defaultTimeout: Duration = .seconds(30), latencyMetric: String? = nil) {
        self.init(transport: UnixSocketTransport(path: socketPath), defaultTimeout: defaultTimeout, latencyMetric: latencyMetric)
    }

    // MARK: - Version negotiation

    /// What `/_ping` says about the engine.
    public struct Ping: Sendable, Equatable {
        /// Highest Docker-compatible API version the engine speaks, e.g. "1.41".
        public var apiVersion: String
        /// Podman's own API version; nil for Docker.
        public var libpodVersion: String?
        public var isPodman: Bool { libpodVersion != nil }
    }

    /// Pings the engine and remembers the versions to use. Docker ≥ 29 rejects versions below
    /// 1.44 while dockerd 20.10 accepts at most 1.41, so the engine's own answer is used.
    @discardableResult
    public func ping(timeout: Duration? = nil) async throws -> Ping {
        let response = try await send(EngineRequest(.GET, "/_ping", api: .unversioned, timeout: timeout))
        guard let apiVersion = response.headers.first(name: "Api-Version"), !apiVersion.isEmpty else {
            throw EngineError.protocolViolation("/_ping answered without an Api-Version header")
        }
        let ping = Ping(apiVersion: apiVersion, libpodVersion: response.headers.first(name: "Libpod-Api-Version"))
        negotiated.withLock { $0 = ping }
        return ping
    }

    public var negotiatedPing: Ping? { negotiated.withLock { $0 } }

    private func prefix(for api: EngineRequest.API) async throws -> String {
        if case .unversioned = api { return "" }
        let ping: Ping
        if let known = negotiatedPing { ping = known } else { ping = try await self.ping() }
        switch api {
        case .unversioned: return ""
        case .compat: return "/v\(ping.apiVersion)"
        case .libpod:
            guard let libpod = ping.libpodVersion else {
                throw EngineError.badRequest("the libpod API exists only on Podman")
            }
            return "/v\(libpod)/libpod"
        }
    }

    // MARK: - Requests

    /// Sends a request and reads the whole answer; statuses ≥ 300 become `EngineError`.
    public func send(_ request: EngineRequest) async throws -> EngineResponse {
        // A streamed upload needs the task to pump it; everything else is collected on the event loop.
        if case .stream = request.body {
            let stream = try await self.stream(request)
            let body = try await stream.body.collect()
            if stream.status >= 300 { throw EngineError.from(status: stream.status, body: body) }
            return EngineResponse(status: stream.status, headers: stream.headers, body: body)
        }
        let started = ContinuousClock.now
        defer { EngineMetrics.observe(request, since: started, label: latencyMetric) }
        let call = try await begin(request, sink: ResponseSink.collecting)
        let collected: CollectedResponse
        do {
            collected = try await call.answer()
        } catch let error as EngineError where error.isClosedBeforeAnswer && call.reused {
            collected = try await begin(request, sink: ResponseSink.collecting, reuse: false).answer()
        }
        let status = Int(collected.head.status.code)
        let body = Array(collected.body.readableBytesView)
        if status >= 300 { throw EngineError.from(status: status, body: body) }
        return EngineResponse(status: status, headers: collected.head.headers, body: body)
    }

    /// Sends a request and returns once the response head is in; the body streams.
    /// Statuses ≥ 400 become `EngineError` after reading the (short) error body.
    public func stream(_ request: EngineRequest) async throws -> EngineStream {
        let response = try await exchange(request)
        if response.status >= 400 {
            throw EngineError.from(status: response.status, body: try await response.body.collect())
        }
        return response
    }

    /// Sends a request and returns once the response head is in, whatever its status; the body
    /// streams. Only failing to get an answer throws.
    public func exchange(_ request: EngineRequest) async throws -> EngineStream {
        let started = ContinuousClock.now
        defer { EngineMetrics.observe(request, since: started, label: latencyMetric) }
        var call = try await begin(request, sink: ResponseSink.streaming)
        let channel = call.channel

        if case .stream(_, let chunks) = request.body {
            do {
                // Writes from this task and from the loop are not ordered with each other.
                try await call.headWritten.get()
                // Each chunk is on the socket before the next is pulled: a 1 GiB upload stays flat.
                for try await chunk in chunks {
                    try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: chunk)))).get()
                }
                // AsyncThrowingStream ends quietly when the task is cancelled; a body cut short that
                // way must not reach the engine as complete (a tar cut at an entry boundary would
                // still build, from part of the context).
                try Task.checkCancellation()
                try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            } catch {
                channel.close(promise: nil)
                throw (error as? EngineError) ?? EngineError.unavailable("upload to the engine failed: \(error)")
            }
        }

        let response: StreamedResponseHead
        do {
            response = try await call.answer()
        } catch let error as EngineError where error.isClosedBeforeAnswer && call.reused && !request.body.isStream {
            call = try await begin(request, sink: ResponseSink.streaming, reuse: false)
            response = try await call.answer()
        }
        return EngineStream(status: Int(response.head.status.code), headers: response.head.headers, body: response.body)
    }

    /// Every pooled request starts the same way: the head first (making it may ping the engine,
    /// which must not hold a pooled connection), then a connection, the deadline for the answer,
    /// and the request handed to the connection's loop.
    private func begin<Answer: Sendable>(
        _ request: EngineRequest, sink: (EventLoopPromise<Answer>) -> ResponseSink, reuse: Bool = true
    ) async throws -> PendingAnswer<Answer> {
        let requestHead = try await head(for: request)
        let timeout = request.timeout ?? defaultTimeout
        let (connection, reused) = try await acquire(timeout: timeout, reuse: reuse)
        let channel = connection.channel
        let answer = channel.eventLoop.makePromise(of: Answer.self)
        var pending = PendingAnswer(
            channel: channel, future: answer.futureResult, deadline: Deadline(channel: channel, after: timeout),
            what: "\(request.method) \(request.path) after \(timeout)")
        pending.reused = reused
        pending.headWritten = write(request, head: requestHead, on: connection, sink: sink(answer))
        return pending
    }

    private func head(for request: EngineRequest) async throws -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.target(prefix: try await prefix(for: request.api)))
        head.headers.add(name: "Host", value: transport.hostHeader)
        for (name, value) in request.headers { head.headers.add(name: name, value: value) }
        switch request.body {
        case .none:
            if request.method == .POST || request.method == .PUT { head.headers.add(name: "Content-Length", value: "0") }
        case .bytes(let contentType, let bytes):
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: String(bytes.count))
        case .stream(let contentType, _):
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
        }
        return head
    }

    /// Hands the request to the connection's event loop without waiting for it: nothing written
    /// there can fail in a way the caller could act on before the response (or its absence) tells.
    /// A streamed body is left open for the caller, who must wait for the returned future (the
    /// head is in the pipeline) before writing any of it.
    private func write(
        _ request: EngineRequest, head: HTTPRequestHead, on connection: PooledConnection, sink: ResponseSink
    ) -> EventLoopFuture<Void> {
        let channel = connection.channel
        let handler = connection.handler
        let headWritten = channel.eventLoop.makePromise(of: Void.self)
        let fixedBody: [UInt8]? = if case .bytes(_, let bytes) = request.body { bytes } else { nil }
        let streamsBody = if case .stream = request.body { true } else { false }
        let work: @Sendable () -> Void = {
            handler.value.begin(sink)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let fixedBody {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: fixedBody))), promise: nil)
            }
            if streamsBody {
                channel.flush()
            } else {
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
            headWritten.succeed()
        }
        if channel.eventLoop.inEventLoop { work() } else { channel.eventLoop.execute(work) }
        return headWritten.futureResult
    }

    /// Takes over the connection after the response head (exec with stdin, attach).
    /// Sends `Connection: Upgrade` / `Upgrade: tcp`; both engines answer 101 and then speak raw
    /// bytes in both directions.
    public func hijack(_ request: EngineRequest) async throws -> HijackedConnection {
        let started = ContinuousClock.now
        defer { EngineMetrics.observe(request, since: started, label: latencyMetric) }
        let target = request.target(prefix: try await prefix(for: request.api))
        let timeout = request.timeout ?? defaultTimeout
        let channel = try await connectRaw(timeout: timeout)
        let headPromise = channel.eventLoop.makePromise(of: HijackHead.self)
        var text = "\(request.method.rawValue) \(target) HTTP/1.1\r\nHost: \(transport.hostHeader)\r\n"
        text += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
        var bodyBytes: [UInt8] = []
        if case .bytes(let contentType, let bytes) = request.body {
            text += "Content-Type: \(contentType)\r\n"
            bodyBytes = bytes
        }
        text += "Content-Length: \(bodyBytes.count)\r\n\r\n"
        var buffer = channel.allocator.buffer(capacity: text.utf8.count + bodyBytes.count)
        buffer.writeString(text)
        buffer.writeBytes(bodyBytes)
        let pending = PendingAnswer(
            channel: channel, future: headPromise.futureResult, deadline: Deadline(channel: channel, after: timeout),
            what: "\(request.method) \(request.path) after \(timeout)")
        let requestBytes = buffer
        let head: HijackHead
        do {
            try await channel.pipeline.handler(type: RawStreamHandler.self).flatMap { handler in
                handler.expectHead(headPromise)
                return channel.writeAndFlush(requestBytes)
            }.get()
            head = try await pending.answer()
        } catch {
            // The connection is this request's alone: nothing else will close it.
            channel.close(promise: nil)
            throw error
        }
        if head.status >= 300 {
            let errorBody = try await head.body.collect()
            channel.close(promise: nil)
            throw EngineError.from(status: head.status, body: errorBody)
        }
        return HijackedConnection(channel: channel, output: head.body)
    }

    /// Closes pooled connections (the engine went away, or shutdown).
    public func closeIdleConnections() {
        let connections = idle.withLock { idle in
            defer { idle.removeAll() }
            return idle
        }
        for connection in connections { connection.channel.close(promise: nil) }
    }

    // MARK: - Connections

    /// An idle pooled connection (`reused`), or a new one.
    private func acquire(timeout: Duration, reuse: Bool) async throws -> (PooledConnection, reused: Bool) {
        // A connection of the loop this task runs on (see EventLoopTaskExecutor) answers without a
        // thread hand-off; any other idle one is still cheaper than a new connection.
        let current = MultiThreadedEventLoopGroup.currentEventLoop
        while reuse, let pooled = idle.withLock({ idle in
            let local = current.flatMap { loop in idle.lastIndex { $0.channel.eventLoop === loop } }
            return local.map { idle.remove(at: $0) } ?? idle.popLast()
        }) {
            if pooled.channel.isActive, !pooled.ended.isSet { return (pooled, true) }
            pooled.channel.close(promise: nil)
        }
        let channel = try await transport.connect(on: current ?? group.next(), timeout: timeout, halfClosure: false) {
            try $0.pipeline.syncOperations.addHTTPClientHandlers()
        }
        let pooled = try await channel.eventLoop.submit { [weak self] in
            let handler = ResponseHandler { reusable in
                guard let self else { return }
                if reusable { self.release(channel) } else { channel.close(promise: nil) }
            }
            try channel.pipeline.syncOperations.addHandler(handler)
            return PooledConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), ended: handler.ended)
        }.get()
        return (pooled, false)
    }

    private func release(_ channel: any Channel) {
        guard channel.isActive else { return }
        channel.pipeline.handler(type: ResponseHandler.self).whenSuccess { handler in
            let pooled = PooledConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), ended: handler.ended)
            let kept = self.idle.withLock { idle in
                guard idle.count < Self.maxIdleConnections else { return false }
                idle.append(pooled)
                return true
            }
            if !kept { channel.close(promise: nil) }
        }
    }

    /// A connection of its own (not pooled) that keeps reading after a half-close.
    private func connectRaw(timeout: Duration) async throws -> any Channel {
        try await transport.connect(on: group.next(), timeout: timeout, halfClosure: true) {
            try $0.pipeline.syncOperations.addHandler(RawStreamHandler())
        }
    }
}

struct PooledConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ResponseHandler>
    let ended: OnceFlag
}

/// What a request waits for (the head, or the whole response) on its connection.
private struct PendingAnswer<Answer: Sendable>: Sendable {
    let channel: any Channel
    let future: EventLoopFuture<Answer>
    let deadline: Deadline
    /// The request and its deadline, for the timeout error.
    let what: String
    /// Writes of a streamed body must wait for this: the loop's writes and the task's are not ordered.
    var headWritten: EventLoopFuture<Void>
    /// The connection came from the pool: an engine that closed it as idle never saw the request.
    var reused = false

    init(channel: any Channel, future: EventLoopFuture<Answer>, deadline: Deadline, what: String) {
        self.channel = channel
        self.future = future
        self.deadline = deadline
        self.what = what
        self.headWritten = channel.eventLoop.makeSucceededVoidFuture()
    }

    /// The answer within the deadline; a cancelled task closes the connection, which ends the
    /// wait and the engine operation.
    func answer() async throws -> Answer {
        let channel = self.channel
        do {
            let value = try await withTaskCancellationHandler {
                try await future.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            deadline.cancel()
            return value
        } catch {
            deadline.cancel()
            if deadline.fired { throw EngineError.timeout(what) }
            throw error
        }
    }
}

/// Closes the channel when the response head does not arrive in time; the pending read then
/// fails and `fired` tells the caller it was a timeout rather than a broken engine.
private final class Deadline: Sendable {
    private let task: Scheduled<Void>
    private let state: OnceFlag

    init(channel: any Channel, after timeout: Duration) {
        let state = OnceFlag()
        self.state = state
        task = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            state.set()
            channel.close(promise: nil)
        }
    }

    var fired: Bool { state.isSet }
    func cancel() { task.cancel() }
}

/// A hijacked connection: write stdin, half-close to send EOF, read the engine's raw output.
public struct HijackedConnection: Sendable {
    let channel: any Channel
    /// Raw bytes after the response head (8-byte framed unless the exec has a TTY); a consumer
    /// that stops early closes the connection.
    public let output: EngineBody

    public func write(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Shutdown for writing, not a full close: the engine sees EOF on stdin and keeps sending output.
    public func finishWriting() async throws {
        try await channel.close(mode: .output).get()
    }

    public func close() {
        channel.close(promise: nil)
    }
}
