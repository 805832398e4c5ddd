import NIOCore
import Synchronization
import NIOHTTP1

/// Where the parts of one engine response go.
enum ResponseSink {
    /// The head as soon as it is in, with the body that then streams through a `ReadGate`.
    case streaming(EventLoopPromise<StreamedResponseHead>)
    /// The whole response at once: one wake-up of the waiting task instead of one per part.
    case collecting(EventLoopPromise<CollectedResponse>)
}

struct StreamedResponseHead: Sendable {
    var head: HTTPResponseHead
    var body: EngineBody
}

struct CollectedResponse: Sendable {
    var head: HTTPResponseHead
    var body: ByteBuffer
}

/// A flag that is set once and read from any thread.
final class OnceFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// Feeds HTTP response parts of the one request in flight on a pooled connection to its sink.
///
/// Runs on the channel's event loop only. When the response ends the connection is offered
/// back to the pool, unless the engine asked to close it. A streamed body holds the channel's
/// reads back while its consumer is behind (`ReadGate`).
final class ResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart

    private enum State {
        case idle
        case awaitingHead(ResponseSink)
        case streaming(ReadGate)
        case collecting(EventLoopPromise<CollectedResponse>, HTTPResponseHead, ByteBuffer)
    }

    private var state = State.idle
    private var keepAlive = true
    private let onComplete: (_ reusable: Bool) -> Void
    /// Set once the connection can carry no further request; read by the pool from any thread
    /// (a TLS connection the engine closed stays active while the TLS shutdown runs).
    let ended = OnceFlag()

    init(onComplete: @escaping (_ reusable: Bool) -> Void) {
        self.onComplete = onComplete
    }

    /// Why the connection ended while no request was on it: a request begun afterwards fails
    /// with it at once (a TLS peer that refuses our certificate says so only after the
    /// handshake, before the first request goes out).
    private var endedWith: EngineError?

    func begin(_ sink: ResponseSink) {
        state = .awaitingHead(sink)
        if let endedWith { fail(endedWith, context: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, _):
            return
        case (.awaitingHead(let sink), .head(let head)):
            keepAlive = head.isKeepAlive
            switch sink {
            case .streaming(let promise):
                let (gate, body) = ReadGate.make(for: context.channel)
                state = .streaming(gate)
                promise.succeed(StreamedResponseHead(head: head, body: body))
            case .collecting(let promise):
                state = .collecting(promise, head, ByteBuffer())
            }
        case (.awaitingHead, _):
            fail(EngineError.protocolViolation("the engine sent a response body without a head"), context: context)
        case (.streaming(let gate), .body(let bytes)):
            gate.deliver(bytes)
        case (.streaming(let gate), .end):
            state = .idle
            if !keepAlive { ended.set() }
            if gate.finish() { context.read() }
            onComplete(keepAlive)
        case (.collecting(let promise, let head, var body), .body(var bytes)):
            // Appended in place: the state does not hold a second reference while it grows.
            state = .idle
            body.writeBuffer(&bytes)
            state = .collecting(promise, head, body)
        case (.collecting(let promise, let head, let body), .end):
            state = .idle
            if !keepAlive { ended.set() }
            // The connection goes back to the pool before the waiter runs.
            onComplete(keepAlive)
            promise.succeed(CollectedResponse(head: head, body: body))
        case (.streaming, .head), (.collecting, .head):
            fail(EngineError.protocolViolation("the engine sent a second response head"), context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .streaming(let gate) = state, !gate.mayRead() { return }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .awaitingHead = state {
            fail(EngineError.closedBeforeAnswer, context: nil)
        } else {
            fail(EngineError.unavailable("the engine closed the connection"), context: nil)
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // TLS close_notify from the engine: no further request fits on this connection.
        if case ChannelEvent.inputClosed = event { ended.set() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(EngineError.connection(error), context: context)
    }

    private func fail(_ error: EngineError, context: ChannelHandlerContext?) {
        let failed = state
        state = .idle
        ended.set()
        switch failed {
        case .idle: endedWith = endedWith ?? error
        case .awaitingHead(.streaming(let promise)): promise.fail(error)
        case .awaitingHead(.collecting(let promise)): promise.fail(error)
        case .streaming(let gate): gate.finish(throwing: error)
        case .collecting(let promise, _, _): promise.fail(error)
        }
        context?.close(promise: nil)
    }
}

struct HijackHead: Sendable {
    var status: Int
    /// What the engine sends after the head (the process's output, or an error body).
    var body: EngineBody
}

/// A hijacked connection: parses the response head itself (the HTTP codec is not in the
/// pipeline, so nothing can swallow bytes that follow it), then passes raw bytes through a
/// `ReadGate`, so output is read only as fast as it is consumed.
final class RawStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    private var headPromise: EventLoopPromise<HijackHead>?
    private var pendingHead = ByteBuffer()
    private var gate: ReadGate?
    private static let headTerminator: [UInt8] = Array("\r\n\r\n".utf8)

    /// Why the connection ended before the request went out (see `ResponseHandler.endedWith`).
    private var endedWith: EngineError?

    func expectHead(_ promise: EventLoopPromise<HijackHead>) {
        headPromise = promise
        if let endedWith {
            headPromise = nil
            promise.fail(endedWith)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if let gate {
            gate.deliver(bytes)
            return
        }
        pendingHead.writeBuffer(&bytes)
        let view = pendingHead.readableBytesView
        guard let end = view.firstRange(of: Self.headTerminator) else {
            if pendingHead.readableBytes > 64 * 1024 {
                fail(EngineError.protocolViolation("response head larger than 64 KiB"), context: context)
            }
            return
        }
        let headLength = end.upperBound - view.startIndex
        let headText = pendingHead.readString(length: headLength) ?? ""
        // "HTTP/1.1 101 UPGRADED": the status is the second word.
        let words = headText.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, let status = Int(words[1]) else {
            fail(EngineError.protocolViolation("bad status line in \(headText.prefix(80))"), context: context)
            return
        }
        let (gate, body) = ReadGate.make(for: context.channel)
        self.gate = gate
        headPromise?.succeed(HijackHead(status: status, body: body))
        headPromise = nil
        if pendingHead.readableBytes > 0 { gate.deliver(pendingHead) }
        pendingHead = ByteBuffer()
    }

    func read(context: ChannelHandlerContext) {
        if let gate, !gate.mayRead() { return }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let closed = EngineError.unavailable("the engine closed the connection before answering")
        if gate == nil { endedWith = endedWith ?? closed }
        headPromise?.fail(closed)
        headPromise = nil
        gate?.finish()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The engine half-closed: all output is in.
        if case ChannelEvent.inputClosed = event { gate?.finish() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if headPromise == nil, EngineError.isUncleanTLSShutdown(error) {
            gate?.finish()
            context.close(promise: nil)
            return
        }
        fail(EngineError.unavailable("\(error)"), context: context)
    }

    private func fail(_ error: EngineError, context: ChannelHandlerContext) {
        if gate == nil { endedWith = endedWith ?? error }
        headPromise?.fail(error)
        headPromise = nil
        gate?.finish(throwing: error)
        context.close(promise: nil)
    }
}
