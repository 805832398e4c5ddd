import NIOCore
import NIOPosix

/// Where an HTTP/1.1 server listens: a unix socket (the engines, a local ocimand) or a TCP
/// host and port (an ocimand elsewhere, a Docker daemon on `tcp://`).
public enum HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path): "unix://\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        }
    }

    /// The `Host` header: a unix socket has no name, so any loopback name does.
    public var hostHeader: String {
        switch self {
        case .unix: "localhost"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    func connect(_ bootstrap: ClientBootstrap) async throws -> any Channel {
        do {
            switch self {
            case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            throw EngineError.unavailable("cannot connect to \(self): \(error)")
        }
    }
}
