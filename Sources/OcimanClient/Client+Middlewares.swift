import OpenAPIRuntime

extension Client {
    /// A client for the ocimand at `host` with `middlewares` after the bearer token (a
    /// command-line tool's error reporting, say).
    public init(
        host: OcimanHost, token: String?, timeout: Duration = .seconds(3600), middlewares: [any ClientMiddleware]
    ) {
        self.init(
            serverURL: host.serverURL,
            configuration: .ociman,
            transport: SocketTransport(host: host, timeout: timeout),
            middlewares: (token.map { [BearerToken(token: $0)] } ?? []) + middlewares)
    }
}
