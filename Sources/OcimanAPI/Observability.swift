import CoreMetrics
import Logging
import OcimanCore

/// Process-wide logging and metrics backends; ocimand calls `bootstrap` once at startup.
public enum Observability {
    public enum LogFormat: String, Sendable, CaseIterable {
        /// swift-log's `StreamLogHandler`: `2026-05-01T12:00:00+0000 info ocimand: request_id=… [OcimanAPI] request`.
        case text
        /// One JSON object per line (`JSONLogHandler`).
        case json
    }

    /// Both to standard error. Every log line written while a request is handled carries its `request_id`.
    /// Returns the metrics backend that `GET /metrics` renders.
    public static func bootstrap(logLevel: Logger.Level, logFormat: LogFormat) -> MetricsExporter {
        LoggingSystem.bootstrap(
            { label, metadataProvider in
                switch logFormat {
                case .text:
                    var handler = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
                    handler.logLevel = logLevel
                    return handler
                case .json:
                    var handler = JSONLogHandler(label: label, metadataProvider: metadataProvider)
                    handler.logLevel = logLevel
                    return handler
                }
            },
            metadataProvider: RequestID.metadataProvider
        )
        let exporter = MetricsExporter()
        MetricsSystem.bootstrap(exporter)
        // Counters that other code increments later are shown from the start, at 0.
        _ = Counter(label: OcimanMetrics.reapedContainers)
        return exporter
    }
}
