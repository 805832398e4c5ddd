import Foundation
import OcimanCore
import OpenAPIRuntime
import RFC3339

extension APIHandler {
    public func getEvents(_ input: Operations.GetEvents.Input) async throws -> Operations.GetEvents.Output {
        let query = input.query
        let filter = EventFilter(
            labels: query.label ?? [], containers: query.container ?? [],
            kinds: Set((query._type ?? []).compactMap { EngineEvent.Kind(rawValue: $0.rawValue) }),
            since: query.since, until: query.until)
        let wantsHeartbeatOnly = query._type?.allSatisfy { $0 == .heartbeat } == true
        if wantsHeartbeatOnly {
            throw OcimanError.invalid(field: "type", message: "type=heartbeat alone matches no event")
        }
        let events = try await runtime.events(filter, heartbeatSeconds: query.heartbeatSeconds ?? 10)
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, EventLines()))))
    }
}

/// One `GET /events` line (the contract's Event `oneOf`, told apart by `type`).
struct EventLine: Encodable {
    var type: String
    var id: String?
    var name: String?
    var image: String?
    var labels: [String: String]?
    var exitCode: Int?
    var health: String?
    var time: String?
    var timeNano: Int64?
    var message: String?

    enum CodingKeys: String, CodingKey {
        case type, id, name, image, labels, health, time, message
        case exitCode = "exit_code"
        case timeNano = "time_nano"
    }

    init(_ event: EngineEvent) {
        type = event.kind.rawValue
        id = event.id
        name = event.name
        if event.kind.isContainerEvent {
            image = event.image
            labels = event.labels
        }
        exitCode = event.exitCode
        health = event.health
        time = RFC3339.format(nanosecondsSinceEpoch: event.timeNano)
        timeNano = event.timeNano
    }

    init(type: String, time: String? = nil, message: String? = nil) {
        self.type = type
        self.time = time
        self.message = message
    }
}

struct EventLines: NDJSONTranslator {
    func lines(for item: HeartbeatItem<EngineEvent>) -> [EventLine] {
        switch item {
        case .element(let event): [EventLine(event)]
        case .heartbeat:
            [EventLine(type: "heartbeat", time: RFC3339.format(Date()))]
        }
    }

    /// A stream that reached `until` says so, as a log stream does.
    func finish() -> [EventLine] { [EventLine(type: "end")] }

    func error(_ message: String) -> EventLine { EventLine(type: "error", message: message) }
}
