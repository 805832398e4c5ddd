import EngineDriver
import Foundation

/// Where ocimand listens, as `OCIMAN_HOST` spells it: `tcp://host:port` (IPv6 in brackets) or
/// `unix:///absolute/path`.
public struct OcimanHost: Sendable, Equatable, CustomStringConvertible {
    private enum Address: Equatable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }
    private let address: Address

    public static let `default` = OcimanHost(address: .tcp(host: "127.0.0.1", port: 8420))

    public static func unix(_ path: String) -> OcimanHost { OcimanHost(address: .unix(path: path)) }
    public static func tcp(host: String, port: Int) -> OcimanHost { OcimanHost(address: .tcp(host: host, port: port)) }

    private init(address: Address) { self.address = address }

    public init(parsing text: String) throws(OcimanClientError) {
        let invalid = OcimanClientError.configuration(
            "invalid ocimand host \"\(text)\": expected tcp://HOST:PORT or unix:///PATH")
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw invalid }
            self.init(address: .unix(path: path))
            return
        }
        guard text.hasPrefix("tcp://") else { throw invalid }
        let authority = text.dropFirst("tcp://".count).split(separator: "/", omittingEmptySubsequences: false)[0]
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw invalid }
        var host = authority[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw invalid }
        self.init(address: .tcp(host: String(host), port: port))
    }

    /// How connections reach it: the engine driver's transports, plain TCP (ocimand speaks no TLS).
    var transport: any EngineTransport {
        switch address {
        case .unix(let path): UnixSocketTransport(path: path)
        case .tcp(let host, let port): TCPTransport(plainHost: host, port: port)
        }
    }

    public var description: String { transport.endpoint }

    /// The base URL the generated client builds request paths on; the transport decides where
    /// they go, so for a unix socket the URL's host is only a placeholder.
    var serverURL: URL { URL(string: "http://\(transport.hostHeader)")! }
}

public enum OcimanClientError: Error, CustomStringConvertible {
    /// `OCIMAN_HOST` or the token file could not be used.
    case configuration(String)
    /// The operation answered something other than its success (a problem document, usually).
    case unexpectedResponse(operation: String, output: String)
    /// A stream's line was not an event of the contract.
    case malformedEvent(String)

    public var description: String {
        switch self {
        case .configuration(let message): message
        case .unexpectedResponse(let operation, let output): "\(operation) failed: \(output)"
        case .malformedEvent(let message): "malformed stream event: \(message)"
        }
    }
}
