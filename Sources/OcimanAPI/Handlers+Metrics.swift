import CoreMetrics
import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    /// Renders whatever the process-wide swift-metrics backend collected; ocimand bootstraps it with a
    /// `MetricsExporter` (`Observability.bootstrap`). HTTPMetricsMiddleware sets the versioned content type.
    public func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        guard let exporter = MetricsSystem.factory as? MetricsExporter else {
            throw OcimanError.unavailable("metrics are not enabled in this process")
        }
        return .ok(.init(body: .plainText(HTTPBody(exporter.render()))))
    }
}
