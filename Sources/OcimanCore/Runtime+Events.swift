/// `GET /events`: what happens to containers and images, from any client of the engine.
extension Runtime {
    /// The engine's events matching `filter`, with a heartbeat whenever none came for
    /// `heartbeatSeconds`. The engine is asked before this returns, so an engine that cannot be
    /// reached fails the request instead of the stream.
    public func events(_ filter: EventFilter, heartbeatSeconds: Int) async throws(OcimanError)
        -> AsyncThrowingStream<HeartbeatItem<EngineEvent>, any Error>
    {
        do {
            for label in filter.labels { _ = try Validation.labelFilter(label) }
            try IntegerBounds.check(heartbeatSeconds, IntegerBounds.heartbeatSeconds, field: "heartbeat_seconds")
        } catch {
            throw OcimanError(error)
        }
        try OcimanError.checkTime(filter.since, field: "since")
        try OcimanError.checkTime(filter.until, field: "until")
        if let since = filter.since, let until = filter.until, until < since {
            throw .invalid(field: "until", message: "until (\(until)) is before since (\(since))")
        }
        let events = try await OcimanError.wrap("watching the engine's events") { try await engine.events(filter) }
        return .withHeartbeats(events, every: .seconds(heartbeatSeconds))
    }
}
