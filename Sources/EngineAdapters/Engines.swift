import EngineDriver
import OcimanCore

/// Makes the adapter for a selected engine: the one place that turns a kind into behaviour.
public enum Engines {
    /// `buildLedger` records builds whose processes ocimand must end itself (Podman's).
    public static func adapter(
        for kind: BackendKind, socketPath: String, timeout: Duration, buildLedger: ProcessLedger = ProcessLedger()
    ) -> any ContainerEngine {
        let client = EngineClient(
            socketPath: socketPath, defaultTimeout: timeout, latencyMetric: OcimanMetrics.engineRequestDuration)
        switch kind {
        case .docker: return DockerEngine(client: client)
        case .podman: return PodmanEngine(client: client, buildLedger: buildLedger)
        }
    }
}
