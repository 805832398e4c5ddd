import CoreMetrics

/// Engine call latency, reported through swift-metrics (exported by ocimand at `GET /metrics`).
public enum EngineMetrics {
    /// Histogram of the time from sending a request to the engine until its response head arrives
    /// (or the call fails), by HTTP method and path shape.
    public static let requestDuration = "ociman_engine_request_duration_seconds"

    static func observe(_ request: EngineRequest, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let nanoseconds = elapsed.saturatingNanoseconds
        Timer(
            label: requestDuration,
            dimensions: [("method", request.method.rawValue), ("path", pathShape(request.path))]
        ).recordNanoseconds(nanoseconds)
    }

    /// Engine paths carry ids and names (`/containers/3f2a…/json`); a metric label must not, or every
    /// container would add a time series. Engine API paths are `/collection[/name[/action]]`, so the
    /// second segment is a name unless it is one of the collection-level endpoints below.
    static func pathShape(_ path: String) -> String {
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().prefix(3).map(String.init)
        if segments.count >= 2, !collectionEndpoints.contains(segments[1]) { segments[1] = "{name}" }
        return "/" + segments.joined(separator: "/")
    }

    private static let collectionEndpoints: Set<String> = [
        "json", "create", "prune", "load", "get", "search", "df", "info", "events", "stats",
    ]
}
