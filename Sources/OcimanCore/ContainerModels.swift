/// Backend-neutral containers: what `POST /containers` asks for and what inspect and list answer.

public enum PortProtocol: String, Sendable, Hashable, Codable {
    case tcp, udp
}

public struct PublishSpec: Sendable, Hashable, Codable {
    public var containerPort: Int
    public var `protocol`: PortProtocol
    /// Nil binds all addresses.
    public var hostIP: String?
    /// Nil or 0 lets the engine pick.
    public var hostPort: Int?

    public init(containerPort: Int, protocol: PortProtocol = .tcp, hostIP: String? = nil, hostPort: Int? = nil) {
        self.containerPort = containerPort
        self.protocol = `protocol`
        self.hostIP = hostIP
        self.hostPort = hostPort
    }
}

public struct MountSpec: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable { case bind, volume, tmpfs }
    public var kind: Kind
    /// Host path (bind) or volume name (volume; nil for an anonymous volume); none for tmpfs.
    public var source: String?
    public var target: String
    public var readOnly: Bool

    public init(kind: Kind, source: String? = nil, target: String, readOnly: Bool = false) {
        self.kind = kind
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }
}

public enum PullPolicy: String, Sendable, Hashable, Codable {
    /// Pull only when the image is not present.
    case missing
    case always
    /// 404 when the image is not present.
    case never
}

/// Readiness conditions; every given one must hold within `timeoutSeconds`.
public struct ReadinessWait: Sendable, Hashable, Codable {
    public struct LogPattern: Sendable, Hashable, Codable {
        /// A regular expression searched for in each output line.
        public var pattern: String
        /// How many lines must match.
        public var occurrences: Int

        public init(pattern: String, occurrences: Int = 1) {
            self.pattern = pattern
            self.occurrences = occurrences
        }
    }

    public var timeoutSeconds: Int
    /// A container port, published over TCP, that must accept connections from the host.
    public var tcpPort: Int?
    public var log: LogPattern?
    /// A command that must exit 0 inside the container.
    public var exec: [String]?

    public init(timeoutSeconds: Int, tcpPort: Int? = nil, log: LogPattern? = nil, exec: [String]? = nil) {
        self.timeoutSeconds = timeoutSeconds
        self.tcpPort = tcpPort
        self.log = log
        self.exec = exec
    }
}

/// Everything `POST /containers` can ask for. Codable for the pool state file and the pool key.
public struct RunSpec: Sendable, Hashable, Codable {
    public var image: String
    public var name: String?
    /// Arguments after the image.
    public var command: [String]?
    public var entrypoint: [String]?
    public var env: [String: String]
    public var labels: [String: String]
    public var publish: [PublishSpec]
    public var mounts: [MountSpec]
    public var workdir: String?
    public var user: String?
    public var autoRemove: Bool
    public var pullPolicy: PullPolicy
    public var wait: ReadinessWait?
    /// Stored as the `ociman.expires-at` label for the reaper.
    public var ttlSeconds: Int?
    /// Stored as the `ociman.session` label for the reaper.
    public var session: String?
    /// The main process gets a terminal (`GET /containers/{id}/attach` then carries raw bytes).
    public var tty = false
    /// Stdin stays open for attaching clients.
    public var stdinOpen = false

    public init(
        image: String, name: String? = nil, command: [String]? = nil, entrypoint: [String]? = nil,
        env: [String: String] = [:], labels: [String: String] = [:], publish: [PublishSpec] = [],
        mounts: [MountSpec] = [], workdir: String? = nil, user: String? = nil, autoRemove: Bool = false,
        pullPolicy: PullPolicy = .missing, wait: ReadinessWait? = nil, ttlSeconds: Int? = nil, session: String? = nil
    ) {
        self.image = image
        self.name = name
        self.command = command
        self.entrypoint = entrypoint
        self.env = env
        self.labels = labels
        self.publish = publish
        self.mounts = mounts
        self.workdir = workdir
        self.user = user
        self.autoRemove = autoRemove
        self.pullPolicy = pullPolicy
        self.wait = wait
        self.ttlSeconds = ttlSeconds
        self.session = session
    }
}

/// Labels ociman puts on what it creates; a request may not set them itself.
public enum ManagedLabels {
    /// `true` on every container the service creates: the reaper touches nothing else.
    public static let managed = "ociman.managed"
    /// RFC 3339 creation time.
    public static let created = "ociman.created"
    /// Unix seconds after which the reaper removes the container.
    public static let expiresAt = "ociman.expires-at"
    /// Id of the session that owns the container.
    public static let session = "ociman.session"

    /// Name of the warm pool a container was booted for (it stays after the claim).
    public static let pool = "ociman.pool"
    /// The pool's key (the content hash of its run specification) when the member was booted.
    public static let poolKey = "ociman.pool.key"

    public static let reserved: Set<String> = [managed, created, expiresAt, session, pool, poolKey]
}

/// The engines' label filters, as `GET /containers` and `/events` take them.
public enum LabelFilter {
    /// `key` wants the label present, `key=value` (`key=` included) that value.
    public static func matches(_ filter: String, _ labels: [String: String]) -> Bool {
        guard let equals = filter.firstIndex(of: "=") else { return labels[filter] != nil }
        return labels[String(filter[..<equals])] == String(filter[filter.index(after: equals)...])
    }
}

public struct ContainerState: Sendable, Hashable {
    public var status: String
    public var running: Bool
    public var exitCode: Int?
    public var startedAt: String?
    public var finishedAt: String?

    public init(status: String, running: Bool, exitCode: Int? = nil, startedAt: String? = nil, finishedAt: String? = nil) {
        self.status = status
        self.running = running
        self.exitCode = exitCode
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// A published port as bound: one per host address (IPv4 and IPv6 may get different ports).
public struct PublishedPort: Sendable, Hashable {
    public var containerPort: Int
    public var `protocol`: PortProtocol
    public var hostIP: String
    public var hostPort: Int

    public init(containerPort: Int, protocol: PortProtocol, hostIP: String, hostPort: Int) {
        self.containerPort = containerPort
        self.protocol = `protocol`
        self.hostIP = hostIP
        self.hostPort = hostPort
    }
}

public struct Container: Sendable, Hashable {
    public var id: String
    /// Without Docker's leading `/`.
    public var name: String
    /// The reference it was created from.
    public var image: String
    public var state: ContainerState
    public var labels: [String: String]
    public var ports: [PublishedPort]
    public var ipAddress: String?
    public var created: String

    public init(
        id: String, name: String, image: String, state: ContainerState, labels: [String: String],
        ports: [PublishedPort], ipAddress: String?, created: String
    ) {
        self.id = id
        self.name = name
        self.image = image
        self.state = state
        self.labels = labels
        self.ports = ports
        self.ipAddress = ipAddress
        self.created = created
    }
}

public struct ContainerSummary: Sendable, Hashable {
    public var id: String
    public var name: String
    public var image: String
    public var state: ContainerState
    public var labels: [String: String]
    public var created: String

    public init(id: String, name: String, image: String, state: ContainerState, labels: [String: String], created: String) {
        self.id = id
        self.name = name
        self.image = image
        self.state = state
        self.labels = labels
        self.created = created
    }
}

public struct CommitResult: Sendable, Hashable {
    public var imageID: String
    public var reference: String
}
