import HTTPTypes
import OpenAPIRuntime

/// The path template the router matched (`/containers/{id}`), for log fields and metric labels:
/// the generated code tells a middleware only the operationId, and clients know routes by path.
public enum MatchedRoute {
    @TaskLocal public static var template: String?
}

/// Registers every operation on `base` so that, while it runs, `MatchedRoute.template` is the
/// template it was registered under: the same string the transport routes by.
public struct RouteTemplateTransport: ServerTransport {
    private let base: any ServerTransport

    public init(_ base: any ServerTransport) { self.base = base }

    public func register(
        _ handler: @escaping @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        try base.register(
            { request, body, metadata in
                try await MatchedRoute.$template.withValue(path) { try await handler(request, body, metadata) }
            },
            method: method, path: path)
    }
}
