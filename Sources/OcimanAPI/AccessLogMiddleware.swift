import HTTPTypes
import Logging
import OpenAPIRuntime

/// One log line per request: method, route, status, duration; for a streamed answer (a body of
/// unknown length) written once the body was sent, failed or cut, with its size and first-byte time.
///
/// Goes right after `RequestIDMiddleware`, so it sees every answer the handlers give, including
/// the problem documents and 401s later middlewares produce.
public struct AccessLogMiddleware: ServerMiddleware {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    /// Probes and scrapes arrive every few seconds forever; they are logged at debug unless they fail.
    private static let quietRoutes: Set<String> = ["/health", "/ready", "/metrics"]

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let start = ContinuousClock.now
        let method = request.method.rawValue
        let route = MatchedRoute.template ?? operationID
        // A streamed answer's line is written after the handler's task-locals are gone.
        let requestID = RequestID.current
        let response: HTTPResponse
        let responseBody: HTTPBody?
        do {
            (response, responseBody) = try await next(request, body, metadata)
        } catch {
            // ProblemMiddleware turns nearly everything into a response; the rest the transport answers as 500.
            log(method, route, requestID, status: 500, duration: .now - start, extra: ["error": "\(error)"])
            throw error
        }
        let headAfter = ContinuousClock.now - start
        let status = response.status.code
        let tracked = StreamTracker.tracking(responseBody) { outcome, bytes in
            log(
                method, route, requestID, status: status, duration: .now - start,
                extra: [
                    "first_byte_ms": .stringConvertible(headAfter.inMilliseconds), "bytes": .stringConvertible(bytes),
                    "stream": "\(outcome)",
                ])
        }
        if tracked == nil { log(method, route, requestID, status: status, duration: headAfter) }
        return (response, tracked ?? responseBody)
    }

    private func log(
        _ method: String, _ route: String, _ requestID: String?, status: Int, duration: Duration,
        extra: Logger.Metadata = [:]
    ) {
        let level: Logger.Level = Self.quietRoutes.contains(route) && status < 400 ? .debug : .info
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "method": .string(method),
            "route": .string(route),
            "status": .stringConvertible(status),
            "duration_ms": .stringConvertible(duration.inMilliseconds),
        ]
        if let requestID { metadata["request_id"] = .string(requestID) }
        metadata.merge(extra) { $1 }
        logger.log(level: level, "request", metadata: metadata)
    }
}

extension Duration {
    /// Milliseconds with microsecond resolution, for log fields.
    var inMilliseconds: Double {
        let (seconds, attoseconds) = components
        return (Double(seconds) * 1_000_000 + Double(attoseconds / 1_000_000_000_000)).rounded() / 1_000
    }
}
