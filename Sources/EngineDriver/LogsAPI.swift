// Container output: `GET /containers/{id}/logs` (compat, the same on Docker and Podman).

/// What exec and logs need to know about a container, from its inspect.
public struct ContainerProcessState: Decodable, Sendable {
    /// The full id (the request may have used a name or a short id).
    public var id: String
    public var running: Bool
    /// With a TTY the output is one raw stream; without one it is 8-byte framed.
    public var tty: Bool

    enum CodingKeys: String, CodingKey {
        case id = "Id"
        case state = "State"
        case config = "Config"
    }

    private struct State: Decodable {
        var running: Bool?
        enum CodingKeys: String, CodingKey { case running = "Running" }
    }

    private struct Config: Decodable {
        var tty: Bool?
        enum CodingKeys: String, CodingKey { case tty = "Tty" }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        running = try container.decodeIfPresent(State.self, forKey: .state)?.running ?? false
        tty = try container.decodeIfPresent(Config.self, forKey: .config)?.tty ?? false
    }
}

extension EngineClient {
    public func containerProcessState(_ id: String) async throws -> ContainerProcessState {
        try await send(EngineRequest(.GET, "/containers/\(EngineRequest.escape(id))/json")).decode(ContainerProcessState.self)
    }

    /// Both streams of the container's output. Framing follows the container's TTY flag, not the
    /// Content-Type (Podman labels framed output as raw). Podman sends the response head of a
    /// follow only with the first output, so a follow should pass a long `timeout`.
    /// `follow` keeps the request open until the container stops; `tail` keeps the last N lines
    /// and `since` the output from that Unix time on; `timestamps` prefixes each entry with the
    /// engine's RFC 3339 time and a space.
    public func containerLogs(
        _ id: String, follow: Bool, tail: Int?, since: Int?, timestamps: Bool, timeout: Duration? = nil
    ) async throws -> EngineStream {
        var parameters = [("stdout", "true"), ("stderr", "true")]
        if follow { parameters.append(("follow", "true")) }
        if let tail { parameters.append(("tail", String(tail))) }
        if let since { parameters.append(("since", String(since))) }
        if timestamps { parameters.append(("timestamps", "true")) }
        return try await stream(
            EngineRequest(.GET, "/containers/\(EngineRequest.escape(id))/logs", query: parameters, timeout: timeout))
    }
}
