import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// RFC 9457 problem documents: the one shape of every error ocimand answers (SPEC §4).
public enum ProblemDocument {
    public static let contentType = "application/problem+json"

    public static func render(
        status: Int,
        detail: String,
        field: String? = nil,
        containerID: String? = nil,
        logs: [String]? = nil
    ) -> [UInt8] {
        let problem = Components.Schemas.Problem(
            _type: "about:blank",
            title: title(for: status),
            status: status,
            detail: detail,
            field: field,
            containerId: containerID,
            logs: logs
        )
        return (try? [UInt8](encoder.encode(problem))) ?? Array("{\"status\":\(status)}".utf8)
    }

    /// The status and body for a core error.
    public static func response(for error: OcimanError) -> (HTTPResponse, HTTPBody) {
        let status: Int
        var field: String?
        var containerID: String?
        var logs: [String]?
        switch error {
        case .invalid(let invalidField, _):
            status = 400
            field = invalidField
        case .forbidden: status = 403
        case .notFound: status = 404
        case .conflict: status = 409
        case .unavailable: status = 503
        case .timedOut(_, let id, let lines):
            status = 504
            containerID = id
            logs = lines
        case .exitedBeforeReady(_, let id, let lines):
            status = 409
            containerID = id
            logs = lines
        case .engineFailure: status = 502
        }
        let bytes = render(status: status, detail: error.description, field: field, containerID: containerID, logs: logs)
        return response(status: status, bytes: bytes)
    }

    static func response(status: Int, bytes: [UInt8]) -> (HTTPResponse, HTTPBody) {
        var head = HTTPResponse(status: .init(code: status))
        head.headerFields[.contentType] = contentType
        return (head, HTTPBody(bytes))
    }

    static func title(for status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 426: "Upgrade Required"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "HTTP \(status)"
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// Turns whatever a handler or the generated decoding throws into a problem response, so
/// no error ever reaches the transport as a bare 500.
public struct ProblemMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do {
            return try await next(request, body, metadata)
        } catch let error as ServerError {
            if let core = error.underlyingError as? OcimanError {
                return ProblemDocument.response(for: core)
            }
            if error.underlyingError is WebSocketRequired { return WebSocketRequired.response }
            if error.operationInput == nil {
                // The generated code could not decode the request: the client sent bad input.
                let detail = "invalid request: \(Self.describe(error.underlyingError))"
                let field = Self.field(error.underlyingError)
                return ProblemDocument.response(
                    status: 400, bytes: ProblemDocument.render(status: 400, detail: detail, field: field))
            }
            let detail = "\(error.underlyingError)"
            return ProblemDocument.response(status: 500, bytes: ProblemDocument.render(status: 500, detail: detail))
        } catch let error as OcimanError {
            return ProblemDocument.response(for: error)
        }
    }

    /// Decoding errors print their whole coding path; a client needs the gist.
    private static func describe(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .keyNotFound(let key, let context):
                return "missing field \(path(context.codingPath + [key]))"
            case .typeMismatch(_, let context), .valueNotFound(_, let context):
                return "wrong type at \(path(context.codingPath)): \(context.debugDescription)"
            case .dataCorrupted(let context):
                return context.codingPath.isEmpty
                    ? "malformed JSON: \(context.debugDescription)"
                    : "invalid value at \(path(context.codingPath)): \(context.debugDescription)"
            @unknown default:
                return "\(decoding)"
            }
        }
        return "\(error)"
    }

    /// The offending body field in the contract's spelling (`publish[0].protocol`), when the
    /// decoder knows where it failed.
    private static func field(_ error: any Error) -> String? {
        guard let decoding = error as? DecodingError else { return nil }
        var keys: [any CodingKey]
        switch decoding {
        case .keyNotFound(let key, let context): keys = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            keys = context.codingPath
        @unknown default: return nil
        }
        guard !keys.isEmpty else { return nil }
        var field = ""
        for key in keys {
            if let index = key.intValue {
                field += "[\(index)]"
            } else {
                field += field.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return field
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}
