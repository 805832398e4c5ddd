import CoreMetrics
import OcimanCore
import Prometheus
import Synchronization

/// The swift-metrics backend behind `GET /metrics`: swift-prometheus's registry, plus HELP text
/// and histogram buckets per metric name, which swift-prometheus's own factory leaves empty or
/// generic (its buckets start at 5 ms; most ocimand requests finish well under that).
public final class MetricsExporter: MetricsFactory, Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let samplers = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// `work` runs before every rendering, to set gauges from values owned elsewhere
    /// (the transport's open connections) without that code knowing about metrics.
    public func addSampler(_ work: @escaping @Sendable () -> Void) {
        samplers.withLock { $0.append(work) }
    }

    /// A gauge read from `sample` at every scrape.
    public func addGauge(_ name: String, sample: @escaping @Sendable () -> Int) {
        let gauge = Gauge(label: name, factory: self)
        addSampler { gauge.record(sample()) }
    }

    /// The Prometheus text exposition format, version 0.0.4.
    public func render() -> [UInt8] {
        for sampler in samplers.withLock({ $0 }) { sampler() }
        return registry.emitToBuffer()
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    // MARK: - MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.valueBuckets)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.durationBuckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }

    // MARK: - Catalogue

    /// From 100 µs (an answer without an engine call) to a minute (builds, pulls, waits).
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60),
    ]
    static let valueBuckets: [Double] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]

    /// swift-prometheus requires one HELP text per metric name, so every name gets it from here.
    /// The whole name goes in `metricName`: swift-metrics labels are already full Prometheus names.
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: helpTexts[name] ?? "")
    }

    private static let helpTexts: [String: String] = [
        MetricNames.httpRequests: "HTTP requests answered, by method, route template and status.",
        MetricNames.httpRequestDuration:
            "Time from receiving an HTTP request until its response head is ready, by method, route template and status.",
        MetricNames.httpRequestsInFlight:
            "HTTP requests being worked on or still sending their body, by route template (builds: route=\"/images/build\").",
        MetricNames.httpStreamsOpen: "Streamed (chunked) responses still being sent, by route template.",
        MetricNames.httpStreamsEnded:
            "Streamed responses ended, by route template and outcome: completed, failed, or abandoned (the client left).",
        MetricNames.connectionsOpen: "Client connections open to the HTTP server.",
        OcimanMetrics.engineRequestDuration:
            "Time from sending an Engine API request until its response head arrives, by method and path shape.",
        OcimanMetrics.reapedContainers: "Containers removed because their time-to-live or session expired.",
    ]
}

/// Names of the metrics the API layer reports.
public enum MetricNames {
    public static let httpRequests = "ociman_http_requests_total"
    public static let httpRequestDuration = "ociman_http_request_duration_seconds"
    public static let httpRequestsInFlight = "ociman_http_requests_in_flight"
    public static let httpStreamsOpen = "ociman_http_response_streams_open"
    public static let httpStreamsEnded = "ociman_http_response_streams_total"
    public static let connectionsOpen = "ociman_http_connections_open"
}
