/// Events crossing `ContainerEngine`: what happened to a container or an image, in ociman's
/// words whatever the engine called it.
public struct EngineEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        // Containers
        case create, start, die, oom, destroy
        case healthStatus = "health_status"
        // Images
        case tag, untag, delete, pull, push

        public var isContainerEvent: Bool {
            switch self {
            case .create, .start, .die, .oom, .destroy, .healthStatus: true
            case .tag, .untag, .delete, .pull, .push: false
            }
        }
    }

    public var kind: Kind
    /// The container's id, or the image's id (empty when the engine names none, as Podman's pull).
    public var id: String
    /// The container's name, or the image reference the event is about.
    public var name: String?
    /// A container event's image.
    public var image: String?
    /// `die` only.
    public var exitCode: Int?
    /// `health_status` only: `healthy`, `unhealthy` or `starting`.
    public var health: String?
    /// A container's labels (as the engine reports them with the event).
    public var labels: [String: String]
    /// The engine's time of the event, in nanoseconds since the Unix epoch.
    public var timeNano: Int64

    public init(
        kind: Kind, id: String, name: String? = nil, image: String? = nil, exitCode: Int? = nil, health: String? = nil,
        labels: [String: String] = [:], timeNano: Int64
    ) {
        self.kind = kind
        self.id = id
        self.name = name
        self.image = image
        self.exitCode = exitCode
        self.health = health
        self.labels = labels
        self.timeNano = timeNano
    }
}

/// Which events `ContainerEngine.events` yields. Every given criterion must match.
public struct EventFilter: Sendable, Equatable {
    /// `key` or `key=value`, each must match the container's labels (image events have none).
    public var labels: [String]
    /// Container ids or names; when given, only those containers' events.
    public var containers: [String]
    /// When not empty, only these kinds.
    public var kinds: Set<EngineEvent.Kind>
    /// Unix seconds: past events from then on are replayed first.
    public var since: Double?
    /// Unix seconds: the stream ends then.
    public var until: Double?

    public init(
        labels: [String] = [], containers: [String] = [], kinds: Set<EngineEvent.Kind> = [], since: Double? = nil,
        until: Double? = nil
    ) {
        self.labels = labels
        self.containers = containers
        self.kinds = kinds
        self.since = since
        self.until = until
    }

    /// Whether only container events can match (then the engine is asked for nothing else).
    public var containersOnly: Bool {
        !labels.isEmpty || !containers.isEmpty || (!kinds.isEmpty && kinds.allSatisfy(\.isContainerEvent))
    }

    public func matches(_ event: EngineEvent) -> Bool {
        if !kinds.isEmpty && !kinds.contains(event.kind) { return false }
        if !containers.isEmpty {
            guard event.kind.isContainerEvent,
                containers.contains(where: { $0 == event.id || $0 == event.name || (event.id.hasPrefix($0) && $0.count >= 12) })
            else { return false }
        }
        return labels.allSatisfy { LabelFilter.matches($0, event.labels) }
    }
}
