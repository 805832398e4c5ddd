import EngineDriver
import OcimanCore

/// Makes the adapter for a selected engine: the one place that turns a kind into behaviour.
public enum Engines {
    /// `buildLedger` records builds whose processes ocimand must end itself (Podman's).
    /// `publishedPortHost` is where clients reach ports the engine publishes on every address
    /// (the remote engine's host); nil for an engine on this machine.
    public static func adapter(
        for kind: BackendKind, transport: any EngineTransport, publishedPortHost: String? = nil, timeout: Duration,
        buildLedger: ProcessLedger = ProcessLedger()
    ) -> any ContainerEngine {
        let client = EngineClient(
            transport: transport, defaultTimeout: timeout, latencyMetric: OcimanMetrics.engineRequestDuration)
        switch kind {
        case .docker: return DockerEngine(client: client, publishedPortHost: publishedPortHost)
        case .podman: return PodmanEngine(client: client, publishedPortHost: publishedPortHost, buildLedger: buildLedger)
        }
    }
}
