import Foundation
import NIOCore
import NIOHTTP1

/// One call to the Engine API. Paths are written without the version prefix; `api` picks it.
public struct EngineRequest: Sendable {
    public enum API: Sendable {
        /// Docker-compatible API, `/v<negotiated>/...` (both engines).
        case compat
        /// Podman's own API, `/v<libpod>/libpod/...`.
        case libpod
        /// No prefix (`/_ping`).
        case unversioned
    }

    public enum Body: Sendable {
        case none
        case bytes(contentType: String, [UInt8])
        /// Sent with chunked encoding, each chunk written before the next is pulled.
        case stream(contentType: String, AsyncThrowingStream<[UInt8], any Error>)
    }


    public var method: HTTPMethod
    public var path: String
    public var query: [(String, String)]
    public var body: Body
    public var api: API
    /// Deadline for the response head; nil uses the client's default.
    public var timeout: Duration?
    public var headers: [(String, String)]

    public init(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String)] = [],
        body: Body = .none,
        api: API = .compat,
        timeout: Duration? = nil,
        headers: [(String, String)] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.api = api
        self.timeout = timeout
        self.headers = headers
    }

    /// A JSON body from an Encodable value.
    public static func json<Value: Encodable>(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String)] = [],
        body value: Value,
        api: API = .compat,
        timeout: Duration? = nil
    ) throws -> EngineRequest {
        let bytes = try [UInt8](EngineJSON.encoder.encode(value))
        return EngineRequest(
            method, path, query: query, body: .bytes(contentType: "application/json", bytes), api: api, timeout: timeout)
    }

    func target(prefix: String) -> String {
        var target = prefix + path
        if !query.isEmpty {
            target += "?" + query.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
        }
        return target
    }

    private static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if unreserved.contains(byte) {
                escaped.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                escaped += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return escaped
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A fully read response.
public struct EngineResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        do {
            return try EngineJSON.decoder.decode(type, from: Data(body))
        } catch {
            throw EngineError.protocolViolation("cannot decode \(Value.self): \(error)")
        }
    }
}

/// A response whose body arrives as it is consumed. Stopping iteration early closes the
/// connection, which is how the engine learns that a build, log follow or pull is cancelled.
public struct EngineStream: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: EngineBody
}

extension EngineRequest.Body {
    var isStream: Bool {
        if case .stream = self { return true }
        return false
    }
}
