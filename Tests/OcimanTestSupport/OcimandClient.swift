import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// JSON-over-HTTP calls to a running ocimand, for integration tests of whole routes.
public struct OcimandClient: Sendable {
    public let baseURL: String

    public init(baseURL: String) { self.baseURL = baseURL }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The body as a JSON object; fails the caller's expectation with the raw text otherwise.
        public func object() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw TestSupportError("expected a JSON object, got: \(text)")
            }
            return object
        }

        public func array() throws -> [[String: Any]] {
            guard let array = try JSONSerialization.jsonObject(with: body) as? [[String: Any]] else {
                throw TestSupportError("expected a JSON array, got: \(text)")
            }
            return array
        }

        /// Lines of an NDJSON body, each decoded.
        public func lines() throws -> [[String: Any]] {
            try text.split(separator: "\n").map { line in
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw TestSupportError("not a JSON object line: \(line)")
                }
                return object
            }
        }

        public func header(_ name: String) -> String? {
            headers.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
    }

    /// Sends a request; `json` is serialized as the body with `Content-Type: application/json`.
    public func request(
        _ method: String,
        _ path: String,
        json: Any? = nil,
        body: Data? = nil,
        headers: [String: String] = [:],
        timeout: TimeInterval = 120
    ) async throws -> Response {
        guard let url = URL(string: baseURL + path) else { throw TestSupportError("bad path \(path)") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw TestSupportError("not an HTTP response") }
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { fields[key] = value }
        }
        return Response(status: http.statusCode, headers: fields, body: data)
    }

    public func get(_ path: String) async throws -> Response { try await request("GET", path) }
    public func post(_ path: String, json: Any? = nil) async throws -> Response { try await request("POST", path, json: json) }
    public func delete(_ path: String) async throws -> Response { try await request("DELETE", path) }
}

/// Starts ocimand for `engine`, runs `body`, and stops it whatever happens.
public func withOcimand<T>(
    engine: String,
    arguments: [String] = [],
    environment: [String: String] = [:],
    _ body: (OcimandProcess, OcimandClient) async throws -> T
) async throws -> T {
    let server = try await OcimandProcess.start(engine: engine, arguments: arguments, environment: environment)
    defer { server.stop() }
    return try await body(server, OcimandClient(baseURL: server.baseURL))
}
