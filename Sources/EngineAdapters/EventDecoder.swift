import EngineDriver
import Foundation
import NIOCore
import OcimanCore
import PulledStreams

/// The engine's event stream (JSON objects back to back) to ociman's events: the adapter's
/// `kind` names each engine action in ociman's words (nil: not an event ociman reports), the
/// attributes that are not labels are taken out, and what `filter` rejects is dropped.
struct EventDecoder: PullDecoder {
    let kind: @Sendable (_ type: String, _ action: String) -> EngineEvent.Kind?
    let filter: EventFilter
    private var splitter = JSONStreamSplitter()

    /// Attributes the engines add next to a container's labels.
    static let engineAttributes: Set<String> = [
        "image", "name", "exitCode", "containerExitCode", "podId", "health_status", "signal",
    ]

    init(filter: EventFilter, kind: @escaping @Sendable (_ type: String, _ action: String) -> EngineEvent.Kind?) {
        self.filter = filter
        self.kind = kind
    }

    mutating func feed(_ chunk: ByteBuffer) throws -> [EngineEvent] {
        try splitter.feed(chunk.readableBytesView).compactMap(event).filter(filter.matches)
    }

    mutating func finish() throws -> [EngineEvent] {
        try splitter.finish().compactMap(event).filter(filter.matches)
    }

    func fail(_ error: any Error) throws -> [EngineEvent] {
        throw EngineFailure.classifying(error)
    }

    func event(_ bytes: [UInt8]) -> EngineEvent? {
        guard let message = EngineEventMessage.decode(bytes), let type = message.type, let action = message.action,
            let kind = kind(type, action)
        else { return nil }
        let attributes = message.actor?.attributes ?? [:]
        let timeNano = message.timeNano ?? (message.time ?? 0) * 1_000_000_000
        guard kind.isContainerEvent else {
            return EngineEvent(kind: kind, id: message.actor?.id ?? "", name: attributes["name"], timeNano: timeNano)
        }
        // Docker words a health change `health_status: healthy`; Podman keeps it in an attribute.
        var health = attributes["health_status"]
        if kind == .healthStatus, let colon = action.firstIndex(of: ":") {
            health = action[action.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return EngineEvent(
            kind: kind, id: message.actor?.id ?? "", name: attributes["name"], image: attributes["image"],
            exitCode: kind == .die ? attributes["exitCode"].flatMap { Int($0) } : nil,
            health: kind == .healthStatus ? health : nil,
            labels: attributes.filter { !Self.engineAttributes.contains($0.key) }, timeNano: timeNano)
    }
}
