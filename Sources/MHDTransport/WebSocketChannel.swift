import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization
import WebSockets

/// An upgraded connection's socket driven by SwiftNIO with NIOWebSocket's frame codec: frames
/// in and out, pings answered, fragments joined, the close handshake done, and the handler's
/// session run on top (`WebSocketConnection`).
enum WebSocketChannel {
    /// The largest frame, and the largest message once its fragments are joined.
    static let maxMessageBytes = 1 << 20
    /// How long a close waits for the peer's close frame before the socket is closed anyway.
    static let closeReplyWait = TimeAmount.seconds(2)

    /// Takes ownership of `descriptor` (a duplicate of the upgraded socket) and runs `session`
    /// on it; returns once the socket is closed. `prefetched` is what libmicrohttpd had read
    /// past the request head.
    static func serve(
        descriptor: CInt, prefetched: [UInt8], session: @escaping @Sendable (WebSocketConnection) async -> Void,
        opened: (any Channel) -> Void
    ) async {
        let channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .withConnectedSocket(descriptor) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if !prefetched.isEmpty { try pipeline.addHandler(PrefetchedBytes(prefetched)) }
                        try pipeline.addHandler(WebSocketFrameEncoder())
                        try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxMessageBytes)))
                        // Answers a malformed frame with close 1002 and closes the channel.
                        try pipeline.addHandler(WebSocketProtocolErrorHandler())
                        return try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            close(descriptor)
            return
        }
        opened(channel.channel)
        try? await channel.executeThenClose { inbound, outbound in
            let socket = FramedSocket(inbound: inbound, outbound: outbound, channel: channel.channel)
            await session(socket.connection)
            await socket.close(.normal, "")
            await socket.awaitPeerClose()
        }
    }
}

/// Delivers what libmicrohttpd read past the request head before anything read from the socket.
private final class PrefetchedBytes: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var bytes: [UInt8]?

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if let bytes {
            self.bytes = nil
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: bytes)))
        }
    }
}

/// Frames to messages and back, for one connection.
private final class FramedSocket: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    let channel: any Channel
    var allocator: ByteBufferAllocator { channel.allocator }
    private let reader: FrameReader
    /// A close frame went out: nothing may follow it.
    private let closeSent = Atomic<Bool>(false)
    /// The peer's close frame arrived (or the connection ended).
    private let closeReceived = Atomic<Bool>(false)

    init(
        inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>,
        channel: any Channel
    ) {
        self.reader = FrameReader(inbound.makeAsyncIterator())
        self.outbound = outbound
        self.channel = channel
    }

    var connection: WebSocketConnection {
        WebSocketConnection(
            receive: { [self] in try await receive() },
            send: { [self] message in try await send(message) },
            close: { [self] code, reason in await close(code, reason) })
    }

    func send(_ message: WebSocketMessage) async throws {
        guard !closeSent.load(ordering: .acquiring) else { throw ChannelError.outputClosed }
        switch message {
        case .binary(let bytes):
            try await outbound.write(WebSocketFrame(fin: true, opcode: .binary, data: allocator.buffer(bytes: bytes)))
        case .text(let text):
            try await outbound.write(WebSocketFrame(fin: true, opcode: .text, data: allocator.buffer(string: text)))
        }
    }

    /// The next whole message; control frames are handled on the way.
    func receive() async throws -> WebSocketMessage? {
        var message: (opcode: WebSocketOpcode, bytes: [UInt8])?
        while let frame = try await reader.next() {
            guard frame.maskKey != nil else {
                await close(.protocolError, "client frames must be masked")
                return nil
            }
            switch frame.opcode {
            case .ping:
                guard !closeSent.load(ordering: .acquiring) else { continue }
                try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
            case .pong:
                continue
            case .connectionClose:
                closeReceived.store(true, ordering: .releasing)
                var data = frame.unmaskedData
                let code = data.readInteger(as: UInt16.self).map(WebSocketCloseCode.init) ?? .normal
                await close(code, "")
                return nil
            case .binary, .text:
                guard message == nil else {
                    await close(.protocolError, "a new message began before the last one ended")
                    return nil
                }
                message = (frame.opcode, Array(frame.unmaskedData.readableBytesView))
            case .continuation:
                guard message != nil else {
                    await close(.protocolError, "a continuation frame without a message")
                    return nil
                }
                message!.bytes += frame.unmaskedData.readableBytesView
            default:
                await close(.protocolError, "unknown opcode")
                return nil
            }
            if let current = message, current.bytes.count > WebSocketChannel.maxMessageBytes {
                await close(.messageTooBig, "messages are at most \(WebSocketChannel.maxMessageBytes) bytes")
                return nil
            }
            if frame.fin, let (opcode, bytes) = message {
                if opcode == .binary { return .binary(bytes) }
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    await close(WebSocketCloseCode(1007), "a text message must be UTF-8")
                    return nil
                }
                return .text(text)
            }
        }
        closeReceived.store(true, ordering: .releasing)
        return nil
    }

    /// Sends the close frame once and returns when it is on the socket (the channel closes
    /// right after the session, which would drop it from a full send buffer); nothing is sent
    /// after it. Messages this task sent before are ahead of it; output another task has queued
    /// may be dropped, which a closing peer discards anyway. A peer that reads nothing gets
    /// `closeReplyWait`, then the connection is cut.
    func close(_ code: WebSocketCloseCode, _ reason: String) async {
        guard !closeSent.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var data = allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(code.rawValue)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")
        let channel = self.channel
        let cutOff = channel.eventLoop.scheduleTask(in: WebSocketChannel.closeReplyWait) { channel.close(promise: nil) }
        try? await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)).get()
        cutOff.cancel()
        outbound.finish()
    }

    /// After the session (the only receiver) returned: waits a little for the peer's close
    /// frame, so the peer sees a clean close rather than a reset.
    func awaitPeerClose() async {
        guard !closeReceived.load(ordering: .acquiring) else { return }
        let reader = self.reader
        _ = try? await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let frame = try await reader.next(), frame.opcode != .connectionClose {}
            }
            group.addTask { try await Task.sleep(for: .nanoseconds(WebSocketChannel.closeReplyWait.nanoseconds)) }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// The inbound frames, pulled by one task at a time (the session's receiver, or the close's
/// drain after it).
private final class FrameReader: @unchecked Sendable {
    // Unchecked: `WebSocketConnection.receive` is documented for one task; the close drain runs
    // only after the session, the sole receiver, has returned.
    private var iterator: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator

    init(_ iterator: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> WebSocketFrame? { try await iterator.next() }
}
