import Foundation

// Engine events: `GET /events` (compat; Docker and Podman send the same object shape, with
// their own action names).

/// One object of the engine's event stream, as both engines send it.
public struct EngineEventMessage: Decodable, Sendable, Equatable {
    public struct Actor: Decodable, Sendable, Equatable {
        public var id: String?
        public var attributes: [String: String]?

        enum CodingKeys: String, CodingKey {
            case id = "ID"
            case attributes = "Attributes"
        }
    }

    /// `container`, `image`, `network`, `volume`, …
    public var type: String?
    /// `create`, `start`, `die`, `health_status: healthy`, `tag`, …
    public var action: String?
    public var actor: Actor?
    public var timeNano: Int64?
    public var time: Int64?

    enum CodingKeys: String, CodingKey {
        case type = "Type"
        case action = "Action"
        case actor = "Actor"
        case timeNano
        case time
    }

    public static func decode(_ bytes: [UInt8]) -> EngineEventMessage? {
        try? EngineJSON.decoder.decode(EngineEventMessage.self, from: Data(bytes))
    }
}

extension EngineClient {
    /// The engine's events as they happen (after the past ones from `since`), until `until`
    /// when given, else until the consumer leaves. `filters` is the Engine API's filter map
    /// (`type`, `label`, `container`, `event`); times are Unix seconds, fractions allowed.
    public func events(filters: [String: [String]], since: String?, until: String?) async throws -> EngineStream {
        var parameters: [(String, String)] = []
        if let parameter = try EngineRequest.filtersParameter(filters) { parameters.append(parameter) }
        if let since { parameters.append(("since", since)) }
        if let until { parameters.append(("until", until)) }
        // The engines answer the head at once; the body may stay quiet for as long as nothing happens.
        return try await stream(EngineRequest(.GET, "/events", query: parameters, timeout: practicallyForever))
    }
}
