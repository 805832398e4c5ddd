import HTTPTypes
import Logging
import OpenAPIRuntime

/// Gives every request the `X-Request-Id` it is known by: the client's when safe, else a new one.
/// Goes first, so that every log line written for the request carries the id and every answer,
/// refusals included, echoes it.
public struct RequestIDMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let requestID = RequestID.accepting(request.headerFields[.requestID])
        var (response, responseBody) = try await RequestID.$current.withValue(requestID) {
            try await next(request, body, metadata)
        }
        response.headerFields[.requestID] = requestID
        return (response, responseBody)
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
}

/// The id a request is known by in logs and in the `X-Request-Id` response header.
public enum RequestID {
    /// Set while a request's handler runs; `metadataProvider` adds it to every log line of that request.
    @TaskLocal public static var current: String?

    public static let metadataProvider = Logger.MetadataProvider {
        guard let id = current else { return [:] }
        return ["request_id": .string(id)]
    }

    /// The client's id when it is safe to log and echo (1–128 of `A-Z a-z 0-9 . _ -`), else a new one.
    public static func accepting(_ offered: String?) -> String {
        if let offered, isValid(offered) { return offered }
        return generate()
    }

    public static func isValid(_ id: String) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= 128 else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    /// 128 random bits as 32 lowercase hex digits.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let hex = String(high, radix: 16)
        let lowHex = String(low, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + String(repeating: "0", count: 16 - lowHex.count) + lowHex
    }
}
