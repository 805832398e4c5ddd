import Foundation

/// What went wrong talking to an engine, classified by what a caller can do about it.
///
/// Classification uses the HTTP status the engine answered with, never substrings of its
/// message (the ociman library's weak point).
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 404: no such container, image, exec, ...
    case notFound(String)
    /// 409: name in use, container not running, image in use, ...
    case conflict(String)
    /// 400 or 422-like rejections of the request itself.
    case badRequest(String)
    /// 304: the engine had nothing to do (stopping a stopped container).
    case notModified
    /// The socket is missing, refuses connections, or the connection broke.
    case unavailable(String)
    /// No answer within the deadline.
    case timeout(String)
    /// Any other status, with the engine's own message.
    case engine(status: Int, message: String)
    /// The engine answered something this driver cannot parse.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .notFound(let message): "not found: \(message)"
        case .conflict(let message): "conflict: \(message)"
        case .badRequest(let message): "rejected by the engine: \(message)"
        case .notModified: "not modified"
        case .unavailable(let message): "engine unavailable: \(message)"
        case .timeout(let message): "engine call timed out: \(message)"
        case .engine(let status, let message): "engine error \(status): \(message)"
        case .protocolViolation(let message): "unexpected engine response: \(message)"
        }
    }

    /// The engine's own words, without the classification prefix.
    public var message: String {
        switch self {
        case .notFound(let m), .conflict(let m), .badRequest(let m), .unavailable(let m), .timeout(let m),
            .protocolViolation(let m):
            m
        case .notModified: "not modified"
        case .engine(_, let m): m
        }
    }

    /// Maps an error status and body. Docker answers `{"message"}`, Podman
    /// `{"cause","message","response"}`; both put the useful text in `message`.
    static func from(status: Int, body: [UInt8]) -> EngineError {
        let message = Self.extractMessage(body) ?? "HTTP \(status)"
        switch status {
        case 304: return .notModified
        case 400: return .badRequest(message)
        case 404: return .notFound(message)
        case 409: return .conflict(message)
        default: return .engine(status: status, message: message)
        }
    }

    static func extractMessage(_ body: [UInt8]) -> String? {
        struct Payload: Decodable {
            var message: String?
            var cause: String?
        }
        if let payload = try? EngineJSON.decoder.decode(Payload.self, from: Data(body)), let message = payload.message {
            return message
        }
        let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
