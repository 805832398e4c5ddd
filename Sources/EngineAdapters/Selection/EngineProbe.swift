import EngineDriver

public enum EngineProbe {
    /// True when something at `socketPath` answers `GET /_ping` within two seconds.
    public static func answersPing(socketPath: String) async -> Bool {
        await whyNot(.unix(socketPath)) == nil
    }

    /// nil when the engine at `address` answers `GET /_ping` in time, else why not: "" for a
    /// local socket that is not there (nothing to add), the error otherwise (a TLS failure, what
    /// ssh said). A remote engine gets longer than a local socket: ssh alone takes a moment.
    public static func whyNot(_ address: EngineAddress) async -> String? {
        let transport: any EngineTransport
        do {
            transport = try address.transport()
        } catch {
            return "\(error)"
        }
        let timeout: Duration = if case .unix = address { .seconds(2) } else { .seconds(15) }
        let client = EngineClient(transport: transport, defaultTimeout: timeout)
        defer { client.closeIdleConnections() }
        do {
            try await client.ping()
            return nil
        } catch {
            if case .unix = address { return "" }
            if let ssh = transport as? SSHTransport, let detail = ssh.failureDetail { return detail }
            return "\(error)"
        }
    }
}
