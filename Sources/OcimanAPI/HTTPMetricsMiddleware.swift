import CoreMetrics
import HTTPTypes
import OcimanCore
import OpenAPIRuntime
import Synchronization

/// The HTTP series of `/metrics`: requests and their durations per method, route and status,
/// requests in flight per route, and streamed answers open and ended (by outcome). A streamed
/// answer stays in flight until its body was sent, failed, or the client left.
///
/// Answers the transport gives on its own (no such route, 405, 413 before a handler ran) never
/// reach a middleware and are not counted.
public struct HTTPMetricsMiddleware: ServerMiddleware {
    let metrics: HTTPMetrics

    public init(metricsFactory: any MetricsFactory) {
        self.metrics = HTTPMetrics(factory: metricsFactory)
    }

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
        let inFlight = metrics.inFlight(route: route)
        inFlight.increment()
        var response: HTTPResponse
        let responseBody: HTTPBody?
        do {
            (response, responseBody) = try await next(request, body, metadata)
        } catch {
            inFlight.decrement()
            metrics.record(method: method, route: route, status: 500, headAfter: .now - start)
            throw error
        }
        if operationID == "getMetrics" {
            // The generated code says text/plain; Prometheus wants the format version too.
            response.headerFields[.contentType] = MetricsExporter.contentType
        }
        metrics.record(method: method, route: route, status: response.status.code, headAfter: .now - start)
        let streamsOpen = metrics.streamsOpen(route: route)
        let tracked = StreamTracker.tracking(responseBody) { [metrics] outcome, _ in
            streamsOpen.decrement()
            inFlight.decrement()
            metrics.streamEnded(route: route, outcome: outcome)
        }
        guard let tracked else {
            inFlight.decrement()
            return (response, responseBody)
        }
        streamsOpen.increment()
        return (response, tracked)
    }
}

/// Per-request metric handles, made once per label set: creating one goes through the registry's lock.
final class HTTPMetrics: Sendable {
    private struct Key: Hashable {
        var method: String
        var route: String
        var status: Int
    }
    private struct Handles: Sendable {
        var requests: Counter
        var duration: Timer
    }
    private struct RouteGauges: Sendable {
        var inFlight: Meter
        var streamsOpen: Meter
    }

    private struct StreamKey: Hashable {
        var route: String
        var outcome: StreamTracker.Outcome
    }

    private let factory: any MetricsFactory
    private let byExchange = Mutex<[Key: Handles]>([:])
    private let byRoute = Mutex<[String: RouteGauges]>([:])
    private let byStreamEnd = Mutex<[StreamKey: Counter]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func record(method: String, route: String, status: Int, headAfter: Duration) {
        let key = Key(method: method, route: route, status: status)
        let handles = byExchange.withLock { cache in
            if let known = cache[key] { return known }
            let dimensions = [("method", key.method), ("route", key.route), ("status", String(status))]
            let made = Handles(
                requests: Counter(label: MetricNames.httpRequests, dimensions: dimensions, factory: factory),
                duration: Timer(label: MetricNames.httpRequestDuration, dimensions: dimensions, factory: factory)
            )
            cache[key] = made
            return made
        }
        handles.requests.increment()
        handles.duration.recordNanoseconds(headAfter.saturatingNanoseconds)
    }

    func streamEnded(route: String, outcome: StreamTracker.Outcome) {
        let key = StreamKey(route: route, outcome: outcome)
        let counter = byStreamEnd.withLock { cache in
            if let known = cache[key] { return known }
            let made = Counter(
                label: MetricNames.httpStreamsEnded, dimensions: [("route", route), ("outcome", outcome.rawValue)], factory: factory)
            cache[key] = made
            return made
        }
        counter.increment()
    }

    func inFlight(route: String) -> Meter { gauges(route).inFlight }
    func streamsOpen(route: String) -> Meter { gauges(route).streamsOpen }

    private func gauges(_ route: String) -> RouteGauges {
        byRoute.withLock { cache in
            if let known = cache[route] { return known }
            let dimensions = [("route", route)]
            let made = RouteGauges(
                inFlight: Meter(label: MetricNames.httpRequestsInFlight, dimensions: dimensions, factory: factory),
                streamsOpen: Meter(label: MetricNames.httpStreamsOpen, dimensions: dimensions, factory: factory)
            )
            cache[route] = made
            return made
        }
    }
}
