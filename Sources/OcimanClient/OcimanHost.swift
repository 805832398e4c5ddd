import EngineDriver
import Foundation

/// Where ocimand listens, as `OCIMAN_HOST` spells it: `tcp://host:port` (IPv6 in brackets) or
/// `unix:///absolute/path`.
public struct OcimanHost: Sendable, Equatable, CustomStringConvertible {
    let endpoint: HTTPEndpoint

    public static let `default` = OcimanHost(endpoint: .tcp(host: "127.0.0.1", port: 8420))

    public static func unix(_ path: String) -> OcimanHost { OcimanHost(endpoint: .unix(path: path)) }
    public static func tcp(host: String, port: Int) -> OcimanHost { OcimanHost(endpoint: .tcp(host: host, port: port)) }

    init(endpoint: HTTPEndpoint) { self.endpoint = endpoint }

    public init(parsing text: String) throws(OcimanClientError) {
        let invalid = OcimanClientError.configuration(
            "invalid ocimand host \"\(text)\": expected tcp://HOST:PORT or unix:///PATH")
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw invalid }
            self.init(endpoint: .unix(path: path))
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
        self.init(endpoint: .tcp(host: String(host), port: port))
    }

    public var description: String { endpoint.description }

    /// The base URL the generated client builds request paths on; the transport decides where
    /// they go, so for a unix socket the URL's host is only a placeholder.
    var serverURL: URL {
        switch endpoint {
        case .unix: URL(string: "http://localhost")!
        case .tcp: URL(string: "http://\(endpoint.hostHeader)")!
        }
    }
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
