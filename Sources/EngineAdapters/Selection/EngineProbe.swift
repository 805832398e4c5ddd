import EngineDriver

public enum EngineProbe {
    /// True when something at `socketPath` answers `GET /_ping` within two seconds.
    public static func answersPing(socketPath: String) async -> Bool {
        let client = EngineClient(socketPath: socketPath, defaultTimeout: .seconds(2))
        defer { client.closeIdleConnections() }
        return (try? await client.ping()) != nil
    }
}
