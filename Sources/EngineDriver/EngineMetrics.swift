import CoreMetrics
import NIOCore

/// Engine call latency, reported through swift-metrics under a label the client's owner picks:
/// a histogram of the time from sending a request until its response head arrives (or the call
/// fails), by HTTP method and path shape.
enum EngineMetrics {
    static func observe(_ request: EngineRequest, since start: ContinuousClock.Instant, label: String?) {
        guard let label else { return }
        let elapsed = ContinuousClock.now - start
        let nanoseconds = TimeAmount(elapsed).nanoseconds
        Timer(
            label: label,
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
