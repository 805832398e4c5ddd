import NIOCore
import NIOPosix

/// How a connection to the engine is opened: a unix socket, TCP (with TLS), or an ssh process's
/// stdio. Everything above a connection (HTTP, hijacking, the pool) is the same for all of them.
public protocol EngineTransport: Sendable {
    /// The endpoint as a URL (`unix:///…`, `tcp://host:port`, `ssh://user@host`), for `/backend`
    /// and messages; never carries secrets.
    var endpoint: String { get }
    /// The `Host` header of requests over it.
    var hostHeader: String { get }
    /// Opens a connection on `eventLoop`. The transport's own handlers (TLS) come first;
    /// `protocolHandlers` adds the rest. With `halfClosure`, the engine's EOF closes only the
    /// input and `close(mode: .output)` sends EOF to the engine (exec stdin).
    func connect(
        on eventLoop: any EventLoop, timeout: Duration, halfClosure: Bool,
        protocolHandlers: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel
}

extension EngineTransport {
    /// A unix socket or a pipe has no name; any loopback name does.
    public var hostHeader: String { "localhost" }
}

/// The engine's unix socket on this machine.
public struct UnixSocketTransport: EngineTransport {
    public let path: String

    public init(path: String) { self.path = path }

    public var endpoint: String { "unix://\(path)" }

    public func connect(
        on eventLoop: any EventLoop, timeout: Duration, halfClosure: Bool,
        protocolHandlers: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try protocolHandlers(channel) }
            }
        do {
            return try await bootstrap.connect(unixDomainSocketPath: path).get()
        } catch {
            throw EngineError.unavailable("cannot connect to \(path): \(error)")
        }
    }
}
