import CMicroHTTPD
import Glibc
import HTTPTypes
import OpenAPIRuntime
import Synchronization
import WebSockets

/// swift-openapi-runtime's `ServerTransport` on libmicrohttpd.
///
/// `ConnectionGate` accepts connections and holds each until its first request head is in and
/// sound; then libmicrohttpd owns the socket and parses HTTP on a small epoll thread pool; every
/// request becomes a Swift task. Connections are suspended (never polled) while a handler is working
/// or a streamed body has nothing to send, so idle streams cost no CPU.
public final class MHDServer: ServerTransport, Sendable {
    public typealias Handler = @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (
        HTTPResponse, HTTPBody?
    )

    public let configuration: MHDServerConfiguration
    private let router = Mutex(Router<Handler>())
    private let daemon = Mutex<DaemonHandle?>(nil)
    private let gate = Mutex<ConnectionGate?>(nil)
    /// Connections the gate has passed to `MHD_add_connection`, until libmicrohttpd's "started"
    /// notification (on one of its threads) takes their context.
    private let handedOver = Mutex<[Int32: ConnectionContext]>([:])
    private let inFlight = Mutex<[ObjectIdentifier: RequestContext]>([:])
    private let connections: ConnectionTable
    let disconnectWatch: DisconnectWatch
    /// Starts every handler task; stateless apart from where resumed tasks go, so one serves all.
    private let handlerExecutor: InlineFirstExecutor
    /// Answers clients too slow to send their request head or body (`headerTimeout`, `requestTimeout`).
    private let deadlineSweep = Mutex<Task<Void, Never>?>(nil)
    private let closingAnswers: ClosingAnswers
    private let webSockets = WebSocketUpgrades()

    public init(configuration: MHDServerConfiguration) {
        self.configuration = configuration
        self.connections = ConnectionTable(
            limit: configuration.connectionLimit, perClientLimit: configuration.perAddressConnectionLimit)
        self.disconnectWatch = DisconnectWatch(interval: configuration.disconnectCheckInterval)
        self.handlerExecutor = InlineFirstExecutor(fallback: configuration.handlerExecutor ?? { globalConcurrentExecutor })
        self.closingAnswers = ClosingAnswers(configuration)
    }

    public func register(
        _ handler: @escaping Handler,
        method: HTTPRequest.Method,
        path: String
    ) throws {
        try router.withLock { try $0.add(method, path, handler) }
    }

    /// Binds and starts serving. Returns the bound address (the real port when 0 was asked for).
    @discardableResult
    public func start() throws -> ListenAddress {
        let socket = try ListeningSocket.open(configuration.listen, socketMode: configuration.unixSocketMode)
        var config = ociman_mhd_config()
        // No listen socket: `ConnectionGate` accepts, and adds each connection once its first head is in.
        config.flags =
            UInt32(MHD_USE_EPOLL_INTERNAL_THREAD.rawValue) | UInt32(MHD_ALLOW_SUSPEND_RESUME.rawValue)
            | UInt32(MHD_USE_ERROR_LOG.rawValue) | UInt32(MHD_ALLOW_UPGRADE.rawValue)
            | UInt32(MHD_USE_NO_LISTEN_SOCKET.rawValue)
        config.thread_pool_size = UInt32(configuration.threadPoolSize)
        // The caps are the connection table's; libmicrohttpd gets only connections it admitted, and
        // room for those whose slot the table freed before libmicrohttpd finished closing them.
        let mhdLimit = min(configuration.connectionLimit, Int(UInt32.max) - Self.cleanupRoom) + Self.cleanupRoom
        config.connection_limit = UInt32(mhdLimit)
        config.per_ip_connection_limit = 0
        config.connection_timeout_seconds = UInt32(clamping: configuration.idleTimeoutSeconds)
        config.connection_memory_limit = configuration.connectionMemoryLimit
        config.access_handler = mhdAccessHandler
        config.completed = mhdRequestCompleted
        config.uri_logger = mhdURILogger
        config.notify_connection = mhdNotifyConnection
        let selfPointer = Unmanaged.passUnretained(self).toOpaque()
        config.access_handler_cls = selfPointer
        config.completed_cls = selfPointer
        config.uri_logger_cls = selfPointer
        config.notify_connection_cls = selfPointer
        Self.raiseDescriptorLimit(toFit: mhdLimit + Self.descriptorReserve)
        guard let started = ociman_mhd_start(&config) else {
            socket.close()
            throw MHDServerError.startFailed(String(describing: socket.address))
        }
        let gate: ConnectionGate
        do {
            let settings = ConnectionGate.Settings(
                limits: configuration.headLimits, headDeadline: configuration.firstHeadDeadline,
                requestTimeout: configuration.requestTimeout, answers: closingAnswers)
            gate = try ConnectionGate(listener: socket, connections: connections, settings: settings) {
                [weak self] descriptor, context, address, length in
                guard let self else {
                    _ = Glibc.close(descriptor)
                    return
                }
                self.handOver(descriptor, context, address, length)
            }
            daemon.withLock { $0 = DaemonHandle(pointer: started) }
            try gate.start()
        } catch {
            daemon.withLock { $0 = nil }
            MHD_stop_daemon(started)
            socket.close()
            throw error
        }
        self.gate.withLock { $0 = gate }
        disconnectWatch.start()
        startDeadlineSweep()
        return socket.address
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, then cancels the
    /// rest and closes every connection.
    public func shutdown(gracePeriod: Duration) async {
        guard let running = daemon.withLock({ $0 })?.pointer, let gate = gate.withLock({ $0 }) else { return }
        // Closing the listen socket now makes new clients fail at once (refused) rather than wait
        // in the backlog through the grace. Heads already arriving are still gated and served.
        gate.stopAccepting()
        // Interactive sessions do not end by themselves: they end now, like clients that left.
        webSockets.closeAll()
        let deadline = ContinuousClock.now.advanced(by: gracePeriod)
        while ContinuousClock.now < deadline, inFlight.withLock({ !$0.isEmpty }) || webSockets.openCount > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Suspended connections must be resumed before libmicrohttpd will stop.
        for context in inFlight.withLock({ Array($0.values) }) { context.abandon() }
        // The gate first: nothing may be added to a daemon being stopped.
        gate.stop()
        self.gate.withLock { $0 = nil }
        daemon.withLock { $0 = nil }
        MHD_stop_daemon(running)
        disconnectWatch.stop()
        deadlineSweep.withLock { $0?.cancel() }
    }

    public var inFlightRequestCount: Int { inFlight.withLock { $0.count } }

    /// Client connections open now (within the caps), idle keep-alive ones included.
    public var openConnectionCount: Int { connections.count }

    /// Connections libmicrohttpd may hold beyond `connectionLimit`: closed ones it has not yet cleaned up.
    private static let cleanupRoom = 64
    /// Descriptors besides client connections: listen socket, engine connections, logs, children.
    private static let descriptorReserve = 256

    /// Each connection holds a descriptor. Below the caps, accept would fail with EMFILE and
    /// libmicrohttpd would stop accepting, leaving clients unanswered in the listen backlog; so a
    /// lower soft limit is raised as far as the hard limit allows.
    private static func raiseDescriptorLimit(toFit needed: Int) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(needed) else { return }
        limit.rlim_cur = min(rlim_t(needed), limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }

    // MARK: - libmicrohttpd callbacks (on the daemon's threads)

    /// The gate found a connection's first head complete and sound: libmicrohttpd takes it over.
    private func handOver(_ descriptor: Int32, _ context: ConnectionContext, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) {
        // An entry left under this descriptor number is a connection libmicrohttpd closed without
        // a notification (its worker failed to take it on): the number is free again, so that one is gone.
        if let stale = handedOver.withLock({ $0.updateValue(context, forKey: descriptor) }) { connections.remove(stale) }
        guard let running = daemon.withLock({ $0 })?.pointer else {
            handedOver.withLock { _ = $0.removeValue(forKey: descriptor) }
            _ = Glibc.close(descriptor)
            connections.remove(context)
            return
        }
        // On failure libmicrohttpd has closed the socket, and sends no notification for it.
        if MHD_add_connection(running, descriptor, address, length) != .YES,
            handedOver.withLock({ $0.removeValue(forKey: descriptor) }) != nil
        {
            connections.remove(context)
        }
    }

    /// libmicrohttpd started serving a connection the gate handed over (admitted and counted already).
    fileprivate func connectionStarted(_ connection: OpaquePointer) -> ConnectionContext {
        let descriptor = ociman_mhd_connection_fd(connection)
        // Every connection comes from the gate; an unknown one is served uncounted rather than dropped.
        return handedOver.withLock { $0.removeValue(forKey: descriptor) }
            ?? ConnectionContext(descriptor: descriptor, isTCP: false, client: nil, counted: false)
    }

    fileprivate func upgraded(request: UnsafeMutableRawPointer, prefetched: [UInt8], socket: CInt, handle: OpaquePointer) {
        webSockets.upgraded(request: request, prefetched: prefetched, socket: socket, handle: handle)
    }

    fileprivate func connectionClosed(_ context: ConnectionContext) {
        connections.remove(context)
    }

    fileprivate func beginRequest(rawTarget: UnsafePointer<CChar>, connection: OpaquePointer) -> RequestContext? {
        guard let socketContext = ociman_mhd_socket_context(connection) else { return nil }
        let connectionContext = Unmanaged<ConnectionContext>.fromOpaque(socketContext).takeUnretainedValue()
        let context = RequestContext(server: self, rawTarget: rawTarget, connection: connection, context: connectionContext)
        inFlight.withLock { $0[ObjectIdentifier(context)] = context }
        return context
    }

    fileprivate func endRequest(_ context: RequestContext, completedNormally: Bool) {
        webSockets.forget(Unmanaged.passUnretained(context).toOpaque())
        inFlight.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(context)) }
        context.connectionClosed(completedNormally: completedNormally)
        if let headerTimeout = configuration.headerTimeout {
            let next = ContinuousClock.now.advanced(by: .seconds(configuration.idleTimeoutSeconds) + headerTimeout)
            context.connectionContext.awaitNextHead(by: next)
        }
    }

    fileprivate func access(
        _ context: RequestContext,
        method: UnsafePointer<CChar>,
        target: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>,
        uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>
    ) -> MHD_Result {
        switch context.phase {
        case .new:
            context.phase = .receiving
            // Answered already (a late head, 408): a request that arrived before libmicrohttpd saw the shutdown.
            guard context.connectionContext.headArrived() else { return .NO }
            dispatch(context, method: method, target: target, version: version)
            // Answering on this first call would cost the connection its keep-alive (SPEC §9).
            // A declared body over the cap is the exception: it will not be read, so the
            // connection is lost anyway, and 0.9.75 can queue a response only now or after the
            // whole body (answering now also stops it from sending `100 Continue`). The same
            // holds for a request with a body that `configuration.admit` refused, and for a
            // malformed or ambiguous head (`RequestHead`): losing the connection is the point.
            if context.answerBeforeBody { return respond(context) }
            return .YES
        case .receiving:
            let size = uploadDataSize.pointee
            if size > 0 {
                uploadDataSize.pointee = 0
                return receive(context, UnsafeRawBufferPointer(start: uploadData, count: size))
            }
            context.requestBody?.finish()
            context.clearReceiveDeadline()
            context.phase = .awaitingResponse
            return respond(context)
        case .awaitingResponse:
            return respond(context)
        case .responded:
            uploadDataSize.pointee = 0
            return .YES
        }
    }

    /// The first access call of a request: check the head, route it, admit it, and start its
    /// handler; or leave the problem to answer in `context.immediate`.
    private func dispatch(
        _ context: RequestContext, method methodPointer: UnsafePointer<CChar>,
        target targetPointer: UnsafePointer<CChar>, version: UnsafePointer<CChar>
    ) {
        guard let headers = checkedHead(context, method: methodPointer, target: targetPointer, version: version),
            let (request, route) = self.route(context, method: String(cString: methodPointer), headers: headers),
            let body = admittedBody(context, request, template: route.template)
        else { return }
        let metadata = ServerRequestMetadata(pathParameters: route.parameters)
        let requestBody = context.requestBody
        context.task = handlerExecutor.startTask { [configuration] in
            await self.run(context, route.handler, request, body.value, requestBody, metadata, configuration)
        }
    }

    /// The head's fields once its framing is sound (see `RequestHead`); nil after answering.
    private func checkedHead(
        _ context: RequestContext, method: UnsafePointer<CChar>, target: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>
    ) -> HTTPFields? {
        do {
            return try RequestHead(
                connection: context.connectionPointer, method: method, target: target,
                targetCopy: context.rawTarget, targetLength: context.rawTargetLength, version: version,
                limits: configuration.headLimits
            ).fields
        } catch {
            // Answered on this first call, so libmicrohttpd reads nothing after the head and closes.
            context.immediate = problemResponse(error.status, error.detail)
            context.answerBeforeBody = true
            return nil
        }
    }

    private struct MatchedRoute {
        let handler: Handler
        let template: String
        let parameters: [String: Substring]
    }

    /// The request and the route it matched, on the raw path; nil after answering 404/405/501.
    private func route(_ context: RequestContext, method: String, headers: HTTPFields) -> (HTTPRequest, MatchedRoute)? {
        let target = context.rawTarget
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard let httpMethod = HTTPRequest.Method(method) else {
            context.immediate = problemResponse(.notImplemented, "method \(method) is not supported")
            return nil
        }
        switch router.withLock({ $0.match(method: httpMethod, path: path) }) {
        case .notFound:
            context.immediate = problemResponse(.notFound, "no route for \(path)")
            return nil
        case .methodNotAllowed(let allowed):
            var response = problemResponse(.methodNotAllowed, "\(method) is not allowed on \(path)")
            response.head.headerFields[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            context.immediate = response
            return nil
        case .found(let handler, let template, let parameters):
            var request = HTTPRequest(method: httpMethod, scheme: nil, authority: headers[HTTPField.Name("Host")!], path: target)
            request.headerFields = headers
            context.routeTemplate = template
            return (request, MatchedRoute(handler: handler, template: template, parameters: parameters))
        }
    }

    /// Admission (`configuration.admit`) and the body cap, decided before any body byte is read;
    /// then the body as a back-pressured stream. nil after answering; `.value` nil for no body.
    private func admittedBody(_ context: RequestContext, _ request: HTTPRequest, template: String) -> Admitted? {
        let limit = configuration.bodyLimit(request, template)
        context.bodyLimit = limit
        let declaredLength = request.headerFields[.contentLength].flatMap { Int64($0) }
        let hasBody = (declaredLength ?? 0) > 0 || request.headerFields[.transferEncoding] != nil
        // Host, Origin, Content-Type, ...: refused before the handler runs or the body is read.
        if let refusal = configuration.admit?(request, template, hasBody) {
            context.immediate = problemResponse(HTTPResponse.Status(code: refusal.status), refusal.detail)
            context.answerBeforeBody = hasBody
            return nil
        }
        if let declaredLength, declaredLength > limit {
            context.immediate = payloadTooLarge(limit: limit)
            context.answerBeforeBody = true
            return nil
        }
        // Only a body that can never be paused by backpressure is the client's alone to send in time.
        if min(declaredLength ?? limit, limit) > Int64(configuration.requestBodyBufferBytes) {
            context.clearReceiveDeadline()
        }
        guard hasBody else { return Admitted(value: nil) }
        let stream = RequestBodyStream(
            highWater: configuration.requestBodyBufferBytes,
            suspendConnection: { [weak context] in context?.suspend() },
            resumeConnection: { [weak context] in context?.resume() }
        )
        context.requestBody = stream
        return Admitted(
            value: HTTPBody(stream, length: declaredLength.map { .known($0) } ?? .unknown, iterationBehavior: .single))
    }

    private struct Admitted: Sendable {
        let value: HTTPBody?
    }

    /// Body bytes over the route's cap that are read and dropped so that the 413 (or a 404/405
    /// to a request with a body) can be sent: 0.9.75 refuses to queue a response while a body
    /// is still arriving. A client that sends more than this loses the connection unanswered.
    private static let discardAllowance: Int64 = 4 << 20

    private func receive(_ context: RequestContext, _ bytes: UnsafeRawBufferPointer) -> MHD_Result {
        context.receivedBodyBytes += Int64(bytes.count)
        if context.immediate != nil {
            // The answer is decided; it goes out once the body has ended.
            return context.receivedBodyBytes - context.bodyLimit <= Self.discardAllowance ? .YES : .NO
        }
        if context.receivedBodyBytes > context.bodyLimit {
            context.requestBody?.finish(throwing: MHDServerError.payloadTooLarge)
            context.task?.cancel()
            context.immediate = payloadTooLarge(limit: context.bodyLimit)
            return .YES
        }
        context.requestBody?.push(bytes)
        return .YES
    }

    private func respond(_ context: RequestContext) -> MHD_Result {
        if let immediate = context.immediate {
            context.immediate = nil
            return queue(immediate.asPrepared, on: context)
        }
        switch context.takeResponseOrSuspend() {
        case .response(let prepared): return queue(prepared, on: context)
        case .notYet, .suspended: return .YES
        case .clientGone: return .NO
        }
    }

    private func queue(_ prepared: PreparedResponse, on context: RequestContext) -> MHD_Result {
        context.phase = .responded
        context.clearReceiveDeadline()
        let response: OpaquePointer?
        switch prepared.body {
        case .bytes(let bytes):
            response = bytes.withUnsafeBytes { buffer in
                MHD_create_response_from_buffer(
                    buffer.count,
                    UnsafeMutableRawPointer(mutating: buffer.baseAddress),
                    .RESPMEM_MUST_COPY
                )
            }
        case .upgrade(let upgrade):
            webSockets.expect(upgrade, for: Unmanaged.passUnretained(context).toOpaque())
            response = MHD_create_response_for_upgrade(mhdUpgradeHandler, Unmanaged.passUnretained(self).toOpaque())
        case .stream(let stream):
            let box = Unmanaged.passRetained(stream).toOpaque()
            response = MHD_create_response_from_callback(
                ociman_mhd_size_unknown(),
                32 * 1024,
                mhdContentReader,
                box,
                mhdContentReaderFree
            )
        }
        guard let response else { return .NO }
        for field in prepared.head.headerFields where !Self.managedByMHD.contains(field.name) {
            _ = MHD_add_response_header(response, field.name.rawName, field.value)
        }
        let result = MHD_queue_response(context.connectionPointer, UInt32(prepared.head.status.code), response)
        MHD_destroy_response(response)
        return result
    }

    /// libmicrohttpd writes these itself from the body it is given.
    private static let managedByMHD: Set<HTTPField.Name> = [.contentLength, .transferEncoding, .connection]

    // MARK: - Slow clients

    /// One pass every 250 ms over both deadlines: the head's, for each head after the first on a
    /// kept-alive connection (libmicrohttpd has no request yet while the request line is still
    /// arriving; the first head is the gate's), and the request's, per request from its request
    /// line through a small body.
    private func startDeadlineSweep() {
        guard configuration.headerTimeout != nil || configuration.requestTimeout != nil else { return }
        deadlineSweep.withLock { task in
            task = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    guard let self else { return }
                    let now = ContinuousClock.now
                    for connection in self.connections.all {
                        _ = connection.answerIfHeadLate(now: now, self.closingAnswers.headTimeout)
                    }
                    for context in self.inFlight.withLock({ Array($0.values) }) {
                        _ = context.cutOffIfLate(now: now, answer: self.closingAnswers.requestTimeout)
                    }
                }
            }
        }
    }

    // MARK: - The handler task

    private func run(
        _ context: RequestContext,
        _ handler: Handler,
        _ request: HTTPRequest,
        _ body: HTTPBody?,
        _ requestBody: RequestBodyStream?,
        _ metadata: ServerRequestMetadata,
        _ configuration: MHDServerConfiguration
    ) async {
        let prepared: PreparedResponse
        var streamedBody: HTTPBody?
        let handshake = WebSocketHandshake(request)
        let offer = handshake.map { WebSocketOffer(subprotocols: $0.subprotocols) }
        do {
            let (head, responseBody) = try await WebSocketOffer.$current.withValue(offer) {
                try await handler(request, body, metadata)
            }
            if head.status == .switchingProtocols {
                guard let handshake, let accepted = offer?.accepted else {
                    throw MHDServerError.upgradeNotOffered
                }
                var upgradeHead = head
                for (name, value) in handshake.responseFields(subprotocol: accepted.subprotocol) {
                    upgradeHead.headerFields[HTTPField.Name(name)!] = value
                }
                prepared = PreparedResponse(head: upgradeHead, body: .upgrade(PendingWebSocket(session: accepted.session)))
            } else if let responseBody {
                if case .known(let length) = responseBody.length, length <= configuration.bufferedResponseLimit {
                    let bytes = try await [UInt8](collecting: responseBody, upTo: Int(length))
                    prepared = PreparedResponse(head: head, body: .bytes(bytes))
                } else {
                    let stream = context.makeResponseStream(highWater: configuration.responseStreamBufferBytes)
                    prepared = PreparedResponse(head: head, body: .stream(stream))
                    streamedBody = responseBody
                }
            } else {
                prepared = PreparedResponse(head: head, body: .bytes([]))
            }
        } catch {
            prepared = problemResponse(.internalServerError, "the request failed: \(error)").asPrepared
        }
        requestBody?.abandon()
        context.deliver(prepared)
        guard let streamedBody, case .stream(let stream) = prepared.body else { return }
        do {
            for try await chunk in streamedBody {
                try await stream.write(chunk)
            }
            stream.finish()
        } catch {
            // The client left, or the body failed after the head was sent: cut the connection so
            // the client sees a truncated chunked body rather than a clean end.
            stream.close()
        }
    }

    // MARK: - Transport-level answers

    private func problemResponse(_ status: HTTPResponse.Status, _ detail: String) -> ImmediateResponse {
        let (contentType, bytes) = configuration.renderProblem(status.code, detail)
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = contentType
        return ImmediateResponse(head: head, bytes: bytes)
    }

    private func payloadTooLarge(limit: Int64) -> ImmediateResponse {
        problemResponse(.contentTooLarge, "the request body exceeds the limit of \(limit) bytes for this route")
    }
}

public enum MHDServerError: Error, CustomStringConvertible {
    case startFailed(String)
    case payloadTooLarge
    /// A handler answered 101 to a request that is no WebSocket handshake, or without accepting it.
    case upgradeNotOffered

    public var description: String {
        switch self {
        case .startFailed(let address): "libmicrohttpd could not start on \(address)"
        case .payloadTooLarge: "request body too large"
        case .upgradeNotOffered: "the handler answered 101 without accepting a WebSocket handshake"
        }
    }
}

/// libmicrohttpd's daemon is thread-safe for the calls made on it (add a connection, stop).
private struct DaemonHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

struct ImmediateResponse: Sendable {
    var head: HTTPResponse
    var bytes: [UInt8]
    var asPrepared: PreparedResponse { PreparedResponse(head: head, body: .bytes(bytes)) }
}

struct PreparedResponse: Sendable {
    enum Body: Sendable {
        case bytes([UInt8])
        case stream(ResponseStream)
        /// A 101: the socket becomes this WebSocket once libmicrohttpd has sent the head.
        case upgrade(PendingWebSocket)
    }
    var head: HTTPResponse
    var body: Body
}

/// Whole answers the transport writes straight to a socket, where libmicrohttpd cannot queue one:
/// before a request head is complete (the gate's refusals), while a body is still arriving, or to
/// a connection over a cap.
struct ClosingAnswers: Sendable {
    let headTimeout: [UInt8]
    let requestTimeout: [UInt8]
    let overGlobalCap: [UInt8]
    let overClientCap: [UInt8]
    private let renderProblem: @Sendable (Int, String) -> (String, [UInt8])

    init(_ configuration: MHDServerConfiguration) {
        renderProblem = configuration.renderProblem
        func seconds(_ duration: Duration?) -> String { "\(duration?.components.seconds ?? 0) s" }
        headTimeout = Self.answer(
            .requestTimeout, "the request head did not arrive within \(seconds(configuration.firstHeadDeadline))", renderProblem)
        requestTimeout = Self.answer(
            .requestTimeout, "the request did not arrive within \(seconds(configuration.requestTimeout))", renderProblem)
        overGlobalCap = Self.answer(
            .serviceUnavailable, "the server has \(configuration.connectionLimit) connections open, its limit; retry later",
            renderProblem)
        overClientCap = Self.answer(
            .serviceUnavailable,
            "this client has \(configuration.perAddressConnectionLimit) connections open, the limit per client; close one or retry later",
            renderProblem)
    }

    /// A problem document with its status line and headers, ending the connection.
    func answer(_ status: HTTPResponse.Status, _ detail: String) -> [UInt8] {
        Self.answer(status, detail, renderProblem)
    }

    private static func answer(
        _ status: HTTPResponse.Status, _ detail: String, _ renderProblem: (Int, String) -> (String, [UInt8])
    ) -> [UInt8] {
        let (contentType, body) = renderProblem(status.code, detail)
        let head =
            "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}

// MARK: - C callbacks

private let mhdURILogger: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?)
    -> UnsafeMutableRawPointer? = { serverPointer, uri, connection in
        guard let serverPointer, let uri, let connection else { return nil }
        let server = Unmanaged<MHDServer>.fromOpaque(serverPointer).takeUnretainedValue()
        guard let context = server.beginRequest(rawTarget: uri, connection: connection) else { return nil }
        // Released in mhdRequestCompleted, which libmicrohttpd always calls once the URI logger ran.
        return Unmanaged.passRetained(context).toOpaque()
    }

private let mhdAccessHandler: MHD_AccessHandlerCallback = {
    serverPointer, connection, url, method, version, uploadData, uploadDataSize, requestPointer in
    guard let serverPointer, let method, let url, let version, let uploadDataSize,
        let contextPointer = requestPointer?.pointee
    else {
        return .NO
    }
    let server = Unmanaged<MHDServer>.fromOpaque(serverPointer).takeUnretainedValue()
    let context = Unmanaged<RequestContext>.fromOpaque(contextPointer).takeUnretainedValue()
    return server.access(
        context, method: method, target: url, version: version, uploadData: uploadData, uploadDataSize: uploadDataSize)
}

private let mhdNotifyConnection: MHD_NotifyConnectionCallback = { serverPointer, connection, socketContext, event in
    guard let serverPointer, let connection, let socketContext else { return }
    let server = Unmanaged<MHDServer>.fromOpaque(serverPointer).takeUnretainedValue()
    if event == .CONNECTION_NOTIFY_STARTED {
        // Released on CLOSED, which libmicrohttpd sends for every connection it sent STARTED for.
        socketContext.pointee = Unmanaged.passRetained(server.connectionStarted(connection)).toOpaque()
    } else if event == .CONNECTION_NOTIFY_CLOSED, let pointer = socketContext.pointee {
        socketContext.pointee = nil
        server.connectionClosed(Unmanaged<ConnectionContext>.fromOpaque(pointer).takeRetainedValue())
    }
}

private let mhdRequestCompleted: MHD_RequestCompletedCallback = { serverPointer, connection, requestPointer, reason in
    guard let serverPointer, let requestPointer, let contextPointer = requestPointer.pointee else { return }
    requestPointer.pointee = nil
    let server = Unmanaged<MHDServer>.fromOpaque(serverPointer).takeUnretainedValue()
    let context = Unmanaged<RequestContext>.fromOpaque(contextPointer).takeRetainedValue()
    server.endRequest(context, completedNormally: reason == .REQUEST_TERMINATED_COMPLETED_OK)
}

private let mhdContentReader: MHD_ContentReaderCallback = { streamPointer, position, buffer, capacity in
    guard let streamPointer, let buffer else { return ociman_mhd_reader_end_with_error() }
    let stream = Unmanaged<ResponseStream>.fromOpaque(streamPointer).takeUnretainedValue()
    switch stream.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: capacity)) {
    case .bytes(let count): return count
    case .suspended: return 0
    case .end: return ociman_mhd_reader_end_of_stream()
    case .failed: return ociman_mhd_reader_end_with_error()
    }
}

private let mhdContentReaderFree: MHD_ContentReaderFreeCallback = { streamPointer in
    guard let streamPointer else { return }
    let stream = Unmanaged<ResponseStream>.fromOpaque(streamPointer).takeRetainedValue()
    stream.close()
}

/// The 101 went out: libmicrohttpd hands over the socket (`clsPointer` is the server,
/// `requestPointer` the request's context, used only as a key).
private let mhdUpgradeHandler: MHD_UpgradeHandler = {
    serverPointer, _, requestPointer, extraIn, extraInSize, socket, handle in
    guard let serverPointer, let handle else { return }
    let server = Unmanaged<MHDServer>.fromOpaque(serverPointer).takeUnretainedValue()
    let prefetched = extraIn.map { Array(UnsafeRawBufferPointer(start: $0, count: extraInSize)) } ?? []
    guard let requestPointer else {
        ociman_mhd_upgrade_close(handle)
        return
    }
    server.upgraded(request: requestPointer, prefetched: prefetched, socket: socket, handle: handle)
}
