import EngineDriver
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// What an interactive session (`GET /exec-sessions/{id}/attach`, `GET /containers/{id}/attach`)
/// sends, in the contract's channel scheme.
public enum InteractiveEvent: Sendable, Equatable {
    case stdout([UInt8])
    case stderr([UInt8])
    /// Channel 3: the exit code, sent before the close.
    case exit(Int)
    /// Channel 3: why the session failed.
    case failed(String)
}

/// A client's end of an interactive session: a WebSocket speaking `channel.v1.ociman`.
/// One task reads `events`; writes may come from any task and wait while the socket is full.
public struct InteractiveConnection: Sendable {
    public static let subprotocol = "channel.v1.ociman"
    private let channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>
    public let events: AsyncThrowingStream<InteractiveEvent, any Error>

    /// Opens the WebSocket at `path` (the bearer token on the handshake when given).
    public static func open(host: OcimanHost, token: String?, path: String) async throws -> InteractiveConnection {
        let endpoint = host.endpoint
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        headers.add(name: "Content-Length", value: "0")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<EventLoopFuture<Upgrade>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(maxFrameSize: 1 << 20) { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        .upgraded(try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel))
                    }
                }
                let configuration = NIOTypedHTTPClientUpgradeConfiguration<Upgrade>(
                    upgradeRequestHead: head, upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) })
                return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                    configuration: .init(upgradeConfiguration: configuration))
            }
        }
        let upgrade: EventLoopFuture<Upgrade>
        switch endpoint {
        case .unix(let path):
            upgrade = try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
        case .tcp(let host, let port):
            upgrade = try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
        }
        switch try await upgrade.get() {
        case .upgraded(let channel): return InteractiveConnection(channel: channel)
        case .refused: throw OcimanClientError.configuration("ocimand refused the WebSocket handshake for \(path)")
        }
    }

    private enum Upgrade: Sendable {
        case upgraded(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case refused
    }

    private init(channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) {
        self.channel = channel
        let frames = ChannelFrames(channel)
        events = AsyncThrowingStream { try await frames.nextEvent() }
    }

    public func write(stdin bytes: [UInt8]) async throws {
        try await send(channel: 0, bytes)
    }

    /// End of file on the process's stdin.
    public func closeStdin() async throws {
        try await send(channel: 255, [0])
    }

    public func resize(rows: Int, columns: Int) async throws {
        try await send(channel: 4, Array("{\"rows\":\(rows),\"columns\":\(columns)}".utf8))
    }

    /// Leaves: a normal close frame, then the connection closes (an exec's process ends; an
    /// attach detaches).
    public func close() async {
        var data = channel.channel.allocator.buffer(capacity: 2)
        data.writeInteger(UInt16(1000))
        try? await channel.outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data))
        try? await channel.channel.close()
    }

    private func send(channel number: UInt8, _ payload: [UInt8]) async throws {
        var data = channel.channel.allocator.buffer(capacity: payload.count + 1)
        data.writeInteger(number)
        data.writeBytes(payload)
        try await channel.outbound.write(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: data))
    }
}

/// The inbound frames as events, for the one task that reads them.
private final class ChannelFrames: @unchecked Sendable {
    // Unchecked: `events` is iterated by one task.
    private var iterator: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    private var message: [UInt8]?

    init(_ channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) {
        iterator = channel.inbound.makeAsyncIterator()
        outbound = channel.outbound
    }

    func nextEvent() async throws -> InteractiveEvent? {
        while let frame = try await iterator.next() {
            switch frame.opcode {
            case .ping:
                try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.data))
            case .connectionClose:
                return nil
            case .binary, .continuation:
                message = (message ?? []) + Array(frame.data.readableBytesView)
                guard frame.fin, let bytes = message else { continue }
                message = nil
                if let event = Self.event(bytes) { return event }
            default:
                continue
            }
        }
        return nil
    }

    private static func event(_ bytes: [UInt8]) -> InteractiveEvent? {
        guard let channel = bytes.first else { return nil }
        let payload = Array(bytes.dropFirst())
        switch channel {
        case 1: return .stdout(payload)
        case 2: return .stderr(payload)
        case 3:
            let status = try? JSONDecoder().decode(Status.self, from: Data(payload))
            if let code = status?.exitCode { return .exit(code) }
            return .failed(status?.error ?? String(decoding: payload, as: UTF8.self))
        default: return nil
        }
    }

    private struct Status: Decodable {
        var exitCode: Int?
        var error: String?
        enum CodingKeys: String, CodingKey {
            case exitCode = "exit_code"
            case error
        }
    }
}
