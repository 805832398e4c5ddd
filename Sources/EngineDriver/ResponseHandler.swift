import NIOCore
import Synchronization
import NIOHTTP1

/// Where the parts of one engine response go.
enum ResponseSink {
    /// The head as soon as it is in, then the body as a stream.
    case streaming(head: EventLoopPromise<HTTPResponseHead>?, body: AsyncThrowingStream<ByteBuffer, any Error>.Continuation,
                   ended: OnceFlag)
    /// The whole response at once: one wake-up of the waiting task instead of one per part.
    case collecting(EventLoopPromise<CollectedResponse>)
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
/// back to the pool, unless the engine asked to close it.
final class ResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var sink: ResponseSink?
    /// What a `.collecting` sink has received so far; kept here so that appends happen in place.
    private var collectedHead: HTTPResponseHead?
    private var collectedBody = ByteBuffer()
    private var keepAlive = true
    private let onComplete: (_ reusable: Bool) -> Void

    init(onComplete: @escaping (_ reusable: Bool) -> Void) {
        self.onComplete = onComplete
    }

    func begin(_ sink: ResponseSink) {
        self.sink = sink
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head(let head) = part { keepAlive = head.isKeepAlive }
        switch sink {
        case nil:
            return
        case .streaming(let headPromise, let body, let ended):
            switch part {
            case .head(let head):
                headPromise?.succeed(head)
                sink = .streaming(head: nil, body: body, ended: ended)
            case .body(let bytes):
                body.yield(bytes)
            case .end:
                ended.set()
                body.finish()
                complete()
            }
        case .collecting(let promise):
            switch part {
            case .head(let head):
                collectedHead = head
            case .body(var bytes):
                collectedBody.writeBuffer(&bytes)
            case .end:
                let head = collectedHead
                let body = collectedBody
                complete()
                if let head {
                    promise.succeed(CollectedResponse(head: head, body: body))
                } else {
                    promise.fail(EngineError.protocolViolation("the engine ended a response without a head"))
                }
            }
        }
    }

    /// The response is in: the connection goes back to the pool before the waiter runs.
    private func complete() {
        reset()
        onComplete(keepAlive)
    }

    private func reset() {
        sink = nil
        collectedHead = nil
        collectedBody = ByteBuffer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(EngineError.unavailable("the engine closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(EngineError.protocolViolation("\(error)"))
        context.close(promise: nil)
    }

    private func fail(_ error: EngineError) {
        guard let sink else { return }
        reset()
        switch sink {
        case .streaming(let head, let body, _):
            head?.fail(error)
            body.finish(throwing: error)
        case .collecting(let promise):
            promise.fail(error)
        }
    }
}

struct HijackHead: Sendable {
    var status: Int
}

/// A hijacked connection: parses the response head itself (the HTTP codec is not in the
/// pipeline, so nothing can swallow bytes that follow it), then passes raw bytes through.
final class RawStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    private var headPromise: EventLoopPromise<HijackHead>?
    private var pendingHead = ByteBuffer()
    private var headDone = false
    private static let headTerminator: [UInt8] = Array("\r\n\r\n".utf8)

    init(continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation) {
        self.continuation = continuation
    }

    func expectHead(_ promise: EventLoopPromise<HijackHead>) {
        headPromise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if headDone {
            continuation.yield(bytes)
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
        headDone = true
        // "HTTP/1.1 101 UPGRADED": the status is the second word.
        let words = headText.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, let status = Int(words[1]) else {
            fail(EngineError.protocolViolation("bad status line in \(headText.prefix(80))"), context: context)
            return
        }
        headPromise?.succeed(HijackHead(status: status))
        headPromise = nil
        if pendingHead.readableBytes > 0 { continuation.yield(pendingHead) }
        pendingHead = ByteBuffer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        headPromise?.fail(EngineError.unavailable("the engine closed the connection before answering"))
        headPromise = nil
        continuation.finish()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The engine half-closed: all output is in.
        if case ChannelEvent.inputClosed = event { continuation.finish() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(EngineError.unavailable("\(error)"), context: context)
    }

    private func fail(_ error: EngineError, context: ChannelHandlerContext) {
        headPromise?.fail(error)
        headPromise = nil
        continuation.finish(throwing: error)
        context.close(promise: nil)
    }
}
