import CoreMetrics

/// Metrics the runtime core reports through swift-metrics (exported by ocimand at `GET /metrics`).
public enum OcimanMetrics {
    /// Counter of containers removed because their time-to-live or session expired.
    public static let reapedContainers = "ociman_reaped_containers_total"
    /// Histogram of engine call latency, by method and path shape; recorded by the engine driver.
    public static let engineRequestDuration = "ociman_engine_request_duration_seconds"

    /// Call once per container the reaper removes.
    public static func containerReaped() {
        Counter(label: reapedContainers).increment()
    }
}
