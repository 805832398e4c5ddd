import Synchronization

/// One whole WebSocket message (fragments joined).
public enum WebSocketMessage: Sendable, Equatable {
    case binary([UInt8])
    case text(String)
}

/// Status codes of a close frame (RFC 6455 §7.4.1).
public struct WebSocketCloseCode: Sendable, Equatable {
    public var rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = WebSocketCloseCode(1000)
    public static let goingAway = WebSocketCloseCode(1001)
    public static let protocolError = WebSocketCloseCode(1002)
    public static let unsupportedData = WebSocketCloseCode(1003)
    public static let policyViolation = WebSocketCloseCode(1008)
    public static let messageTooBig = WebSocketCloseCode(1009)
    public static let internalError = WebSocketCloseCode(1011)
}

/// An accepted WebSocket as a handler sees it. The transport answers pings, joins fragments
/// and does the close handshake; both directions are back-pressured (a slow peer holds `send`,
/// a slow `receive` stops reading the socket).
public struct WebSocketConnection: Sendable {
    /// The next message; nil once the peer closed. One task receives.
    public let receive: @Sendable () async throws -> WebSocketMessage?
    /// Returns once the socket took the message (or the transport buffered a little of it).
    public let send: @Sendable (WebSocketMessage) async throws -> Void
    /// Sends a close frame; the connection ends after the peer's reply (or a short wait).
    public let close: @Sendable (WebSocketCloseCode, String) async -> Void

    public init(
        receive: @escaping @Sendable () async throws -> WebSocketMessage?,
        send: @escaping @Sendable (WebSocketMessage) async throws -> Void,
        close: @escaping @Sendable (WebSocketCloseCode, String) async -> Void
    ) {
        self.receive = receive
        self.send = send
        self.close = close
    }
}

/// Offered by the transport to a handler while it serves a request that asks to become a
/// WebSocket (RFC 6455 §4.2.1). The handler checks what it must (the resource exists, ...),
/// accepts, and answers 101; the transport then completes the handshake and runs the session.
/// A request that is no WebSocket handshake has no offer (`current` is nil).
public final class WebSocketOffer: Sendable {
    @TaskLocal public static var current: WebSocketOffer?

    public struct Acceptance: Sendable {
        public let subprotocol: String?
        public let session: @Sendable (WebSocketConnection) async -> Void
    }

    /// What the client listed in `Sec-WebSocket-Protocol`, in its order.
    public let subprotocols: [String]
    private let acceptance = Mutex<Acceptance?>(nil)

    public init(subprotocols: [String]) {
        self.subprotocols = subprotocols
    }

    /// `session` runs once the upgrade is done, and never when the client left before; when it
    /// returns the connection is closed (normally, unless it closed with another code).
    public func accept(subprotocol: String?, session: @escaping @Sendable (WebSocketConnection) async -> Void) {
        acceptance.withLock { $0 = Acceptance(subprotocol: subprotocol, session: session) }
    }

    public var accepted: Acceptance? { acceptance.withLock { $0 } }
}
