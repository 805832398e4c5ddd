import CoreMetrics
import HTTPTypes
import OcimanCore
import Logging
import OpenAPIRuntime
import Synchronization

/// One log line and the HTTP metrics per request, and the `X-Request-Id` it is known by.
///
/// Put it first in the middleware list so that it sees every answer the handlers give, including
/// the problem documents and 401s other middlewares produce. Answers the transport gives on its
/// own (no such route, 405, 413 before a handler ran) never reach a middleware and are not counted.
///
/// A response with a body of unknown length is a stream (ndjson): its log line is written and the
/// in-flight gauge released only once the body has been sent, failed, or the client left.
public struct ObservabilityMiddleware: ServerMiddleware {
    let logger: Logger
    let metrics: HTTPMetrics
    let routes: [String: String]

    public init(logger: Logger, metricsFactory: any MetricsFactory) {
        self.logger = logger
        self.metrics = HTTPMetrics(factory: metricsFactory)
        self.routes = RouteTemplates.byOperationID(contract: embeddedOpenAPIDocument)
    }

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let start = ContinuousClock.now
        let requestID = RequestID.accepting(request.headerFields[.requestID])
        let exchange = Exchange(
            method: request.method.rawValue,
            route: routes[operationID] ?? operationID,
            requestID: requestID,
            start: start
        )
        let inFlight = metrics.inFlight(route: exchange.route)
        inFlight.increment()
        var response: HTTPResponse
        let responseBody: HTTPBody?
        do {
            (response, responseBody) = try await RequestID.$current.withValue(requestID) {
                try await next(request, body, metadata)
            }
        } catch {
            // ProblemMiddleware turns nearly everything into a response; the rest the transport answers as 500.
            inFlight.decrement()
            metrics.record(exchange, status: 500, headAfter: ContinuousClock.now - start)
            log(exchange, status: 500, duration: ContinuousClock.now - start, extra: ["error": "\(error)"])
            throw error
        }
        let headAfter = ContinuousClock.now - start
        response.headerFields[.requestID] = requestID
        if operationID == "getMetrics" && response.status == .ok {
            // The generated code says text/plain; Prometheus wants the format version too. Only on
            // the metrics themselves: a refusal (401, 406) is a problem document.
            response.headerFields[.contentType] = MetricsExporter.contentType
        }
        let status = response.status.code
        metrics.record(exchange, status: status, headAfter: headAfter)

        guard let responseBody, case .unknown = responseBody.length else {
            inFlight.decrement()
            log(exchange, status: status, duration: headAfter)
            return (response, responseBody)
        }
        let streamsOpen = metrics.streamsOpen(route: exchange.route)
        streamsOpen.increment()
        let tracker = StreamTracker { [metrics] outcome, bytes in
            streamsOpen.decrement()
            inFlight.decrement()
            metrics.streamEnded(route: exchange.route, outcome: outcome)
            log(
                exchange, status: status, duration: ContinuousClock.now - start,
                extra: ["first_byte_ms": .stringConvertible(headAfter.inMilliseconds), "bytes": .stringConvertible(bytes), "stream": "\(outcome)"])
        }
        let tracked = HTTPBody(
            TrackedBody(base: responseBody, tracker: tracker),
            length: .unknown,
            iterationBehavior: responseBody.iterationBehavior
        )
        return (response, tracked)
    }

    /// Probes and scrapes arrive every few seconds forever; they are logged at debug unless they fail.
    private static let quietRoutes: Set<String> = ["/health", "/ready", "/metrics"]

    private func log(_ exchange: Exchange, status: Int, duration: Duration, extra: Logger.Metadata = [:]) {
        let level: Logger.Level = Self.quietRoutes.contains(exchange.route) && status < 400 ? .debug : .info
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "request_id": .string(exchange.requestID),
            "method": .string(exchange.method),
            "route": .string(exchange.route),
            "status": .stringConvertible(status),
            "duration_ms": .stringConvertible(duration.inMilliseconds),
        ]
        metadata.merge(extra) { $1 }
        logger.log(level: level, "request", metadata: metadata)
    }
}

struct Exchange: Sendable {
    var method: String
    var route: String
    var requestID: String
    var start: ContinuousClock.Instant
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
}

extension Duration {
    /// Milliseconds with microsecond resolution, for log fields.
    var inMilliseconds: Double {
        let (seconds, attoseconds) = components
        return (Double(seconds) * 1_000_000 + Double(attoseconds / 1_000_000_000_000)).rounded() / 1_000
    }
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

    func record(_ exchange: Exchange, status: Int, headAfter: Duration) {
        let key = Key(method: exchange.method, route: exchange.route, status: status)
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

/// Reports once how a streamed body ended: sent to the end, failed, or dropped because the client left.
final class StreamTracker: Sendable {
    enum Outcome: String, CustomStringConvertible {
        case completed, failed, abandoned
        var description: String { rawValue }
    }

    private struct State {
        var bytes = 0
        var done = false
    }
    private let state = Mutex(State())
    private let report: @Sendable (Outcome, Int) -> Void

    init(report: @escaping @Sendable (Outcome, Int) -> Void) { self.report = report }

    func sent(_ count: Int) { state.withLock { $0.bytes += count } }

    func finish(_ outcome: Outcome) {
        let bytes: Int? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            return state.bytes
        }
        if let bytes { report(outcome, bytes) }
    }

    // The transport drops the body without reading to the end when the client disconnects.
    deinit { finish(.abandoned) }
}

struct TrackedBody: AsyncSequence, Sendable {
    typealias Element = HTTPBody.ByteChunk
    let base: HTTPBody
    let tracker: StreamTracker

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), tracker: tracker) }

    struct Iterator: AsyncIteratorProtocol {
        var base: HTTPBody.AsyncIterator
        let tracker: StreamTracker

        // The transport cancels a request's task when its client leaves, and a cancelled producer
        // may end its stream early without an error: either way the stream was cut, not completed.
        mutating func next() async throws -> HTTPBody.ByteChunk? {
            do {
                guard let chunk = try await base.next() else {
                    tracker.finish(Task.isCancelled ? .abandoned : .completed)
                    return nil
                }
                tracker.sent(chunk.count)
                return chunk
            } catch {
                tracker.finish(Task.isCancelled ? .abandoned : .failed)
                throw error
            }
        }
    }
}

/// operationId → path template, read from the contract: the generated code tells a middleware only
/// the operationId, while a metric label and a log field should name the route the way clients see it.
enum RouteTemplates {
    static func byOperationID(contract: String) -> [String: String] {
        var routes: [String: String] = [:]
        var inPaths = false
        var template: String?
        for line in contract.split(separator: "\n", omittingEmptySubsequences: true) {
            if !line.hasPrefix(" ") {
                inPaths = line.hasPrefix("paths:")
                template = nil
                continue
            }
            guard inPaths else { continue }
            // A path item is the only two-space-indented key under `paths:`.
            if line.hasPrefix("  /") || line.hasPrefix("  '/") || line.hasPrefix("  \"/") {
                let key = line.dropFirst(2).trimmingSuffix(while: { $0 == " " || $0 == ":" })
                template = String(key.trimmingCharacters(in: "'\""))
            } else if let template, let range = line.range(of: "operationId:") {
                let id = line[range.upperBound...].trimmingCharacters(in: " '\"")
                routes[String(id)] = template
            }
        }
        return routes
    }
}

extension Substring {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }

    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var trimmed = self
        while let first = trimmed.first, set.contains(first) { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, set.contains(last) { trimmed = trimmed.dropLast() }
        return trimmed
    }
}
