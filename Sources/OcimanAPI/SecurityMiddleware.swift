import HTTPTypes
import OpenAPIRuntime

/// Requires `Authorization: Bearer <token>` on every operation but the liveness probe; registered
/// only when a token is configured (`OCIMAN_TOKEN`, `--token-file`).
///
/// Goes after the request-id, access-log and metrics middlewares (so refusals are logged and counted) and before
/// `ProblemMiddleware`: it answers 401 itself, as a problem document, without calling on, so no
/// handler runs and no body is decoded for a client without the token.
public struct SecurityMiddleware: ServerMiddleware {
    /// `GET /health` stays open: orchestrators probe liveness without credentials, and it
    /// reveals nothing but that the process runs.
    public static let openOperations: Set<String> = ["getHealth"]

    private let token: [UInt8]

    public init(token: String) {
        self.token = Array(token.utf8)
    }

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        if Self.openOperations.contains(operationID) { return try await next(request, body, metadata) }
        let credentials = request.headerFields[values: .authorization]
        guard credentials.count <= 1, let presented = credentials.first.flatMap(Self.bearerToken) else {
            return Self.unauthorized(
                credentials.isEmpty ? "this service requires Authorization: Bearer <token>" : "expected one Authorization: Bearer <token> header",
                challenge: "Bearer")
        }
        guard Self.constantTimeEquals(Array(presented.utf8), token) else {
            return Self.unauthorized("the bearer token is not valid", challenge: "Bearer error=\"invalid_token\"")
        }
        return try await next(request, body, metadata)
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1); nil for any other scheme.
    static func bearerToken(_ authorization: String) -> String? {
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].drop { $0 == " " }
        return token.isEmpty ? nil : String(token)
    }

    /// Compares without an early exit, so the time taken does not tell how many leading bytes of
    /// a guess were right. It depends only on the length of `expected`.
    static func constantTimeEquals(_ presented: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt64(truncatingIfNeeded: presented.count ^ expected.count)
        for index in expected.indices {
            let guess = index < presented.count ? presented[index] : 0
            difference |= UInt64(guess ^ expected[index])
        }
        return difference == 0
    }

    static func unauthorized(_ detail: String, challenge: String) -> (HTTPResponse, HTTPBody) {
        var (head, body) = ProblemDocument.response(status: 401, bytes: ProblemDocument.render(status: 401, detail: detail))
        head.headerFields[.wwwAuthenticate] = challenge
        return (head, body)
    }
}
