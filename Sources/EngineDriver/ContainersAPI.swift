import Foundation

/// Containers: create, start, inspect, list, stop, kill, wait, remove, commit.
/// Compat endpoints serve both engines; inspect, list and wait use Podman's own API where it is
/// faster or says more (SPEC §9).

// MARK: - Create

/// A port binding as both engines spell it; `HostPort` "" lets the engine pick.
public struct PortBinding: Codable, Sendable, Hashable {
    public var hostIP: String?
    public var hostPort: String?

    public init(hostIP: String?, hostPort: String?) {
        self.hostIP = hostIP
        self.hostPort = hostPort
    }

    enum CodingKeys: String, CodingKey {
        case hostIP = "HostIp"
        case hostPort = "HostPort"
    }
}

public struct MountConfig: Encodable, Sendable, Hashable {
    public enum Kind: String, Encodable, Sendable { case bind, volume, tmpfs }
    public var type: Kind
    public var source: String?
    public var target: String
    public var readOnly: Bool

    public init(type: Kind, source: String?, target: String, readOnly: Bool) {
        self.type = type
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    enum CodingKeys: String, CodingKey {
        case type = "Type"
        case source = "Source"
        case target = "Target"
        case readOnly = "ReadOnly"
    }
}

public struct HostConfig: Encodable, Sendable {
    /// Keyed by `<port>/<protocol>`.
    public var portBindings: [String: [PortBinding]]?
    public var mounts: [MountConfig]?
    public var autoRemove: Bool

    public init(portBindings: [String: [PortBinding]]?, mounts: [MountConfig]?, autoRemove: Bool) {
        self.portBindings = portBindings
        self.mounts = mounts
        self.autoRemove = autoRemove
    }

    enum CodingKeys: String, CodingKey {
        case portBindings = "PortBindings"
        case mounts = "Mounts"
        case autoRemove = "AutoRemove"
    }
}

/// The body of `POST /containers/create`.
public struct ContainerCreateConfig: Encodable, Sendable {
    public var image: String
    public var cmd: [String]?
    public var entrypoint: [String]?
    /// `KEY=VALUE` entries.
    public var env: [String]?
    public var labels: [String: String]
    public var workingDir: String?
    public var user: String?
    /// Keyed by `<port>/<protocol>`; the engines want an empty object as each value.
    public var exposedPorts: [String: EmptyObject]?
    public var hostConfig: HostConfig
    /// The main process gets a terminal (its output is then one raw stream).
    public var tty = false
    /// Stdin stays open for attaching clients.
    public var openStdin = false

    public struct EmptyObject: Encodable, Sendable, Hashable {
        public init() {}
    }

    public init(
        image: String, cmd: [String]?, entrypoint: [String]?, env: [String]?, labels: [String: String],
        workingDir: String?, user: String?, exposedPorts: [String: EmptyObject]?, hostConfig: HostConfig
    ) {
        self.image = image
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env = env
        self.labels = labels
        self.workingDir = workingDir
        self.user = user
        self.exposedPorts = exposedPorts
        self.hostConfig = hostConfig
    }

    enum CodingKeys: String, CodingKey {
        case image = "Image"
        case cmd = "Cmd"
        case entrypoint = "Entrypoint"
        case env = "Env"
        case labels = "Labels"
        case workingDir = "WorkingDir"
        case user = "User"
        case exposedPorts = "ExposedPorts"
        case hostConfig = "HostConfig"
        case tty = "Tty"
        case openStdin = "OpenStdin"
    }
}

// MARK: - Inspect and list

/// `GET /containers/{id}/json` (compat) and Podman's `/libpod/containers/{id}/json`: the fields
/// both spell alike. `Config.Image` is the reference the container was created from on both
/// (the top-level `Image` is an id).
public struct ContainerInspect: Decodable, Sendable {
    public struct State: Decodable, Sendable {
        public var status: String
        public var running: Bool
        public var exitCode: Int?
        public var startedAt: String?
        public var finishedAt: String?
        /// The main process in the engine host's PID namespace; 0 when not running.
        public var pid: Int?

        enum CodingKeys: String, CodingKey {
            case pid = "Pid"
            case status = "Status"
            case running = "Running"
            case exitCode = "ExitCode"
            case startedAt = "StartedAt"
            case finishedAt = "FinishedAt"
        }
    }

    public struct Config: Decodable, Sendable {
        public var image: String?
        public var labels: [String: String]?
        public var tty: Bool?

        enum CodingKeys: String, CodingKey {
            case image = "Image"
            case labels = "Labels"
            case tty = "Tty"
        }
    }

    public struct NetworkSettings: Decodable, Sendable {
        public struct Network: Decodable, Sendable {
            public var ipAddress: String?
            enum CodingKeys: String, CodingKey { case ipAddress = "IPAddress" }
        }
        /// Keyed by `<port>/<protocol>`; null for an exposed port without bindings.
        public var ports: [String: [PortBinding]?]?
        public var ipAddress: String?
        public var networks: [String: Network]?

        enum CodingKeys: String, CodingKey {
            case ports = "Ports"
            case ipAddress = "IPAddress"
            case networks = "Networks"
        }
    }

    public var id: String
    public var name: String
    public var created: String
    public var state: State
    public var config: Config?
    public var networkSettings: NetworkSettings?

    enum CodingKeys: String, CodingKey {
        case id = "Id"
        case name = "Name"
        case created = "Created"
        case state = "State"
        case config = "Config"
        case networkSettings = "NetworkSettings"
    }
}

/// One entry of `GET /containers/json` (compat: `Created` in Unix seconds, names with a leading
/// `/`) or Podman's `/libpod/containers/json` (`Created` RFC 3339, plain names, `ExitCode`).
public struct ContainerListEntry: Decodable, Sendable {
    public enum Created: Sendable, Hashable {
        case unixSeconds(Int64)
        case text(String)
    }

    public var id: String
    public var names: [String]
    public var image: String
    public var state: String
    public var labels: [String: String]
    public var created: Created
    /// Only Podman's own list reports it; with `exited` it tells whether it means anything.
    public var exitCode: Int?
    public var exited: Bool?

    enum CodingKeys: String, CodingKey {
        case id = "Id"
        case names = "Names"
        case image = "Image"
        case state = "State"
        case labels = "Labels"
        case created = "Created"
        case exitCode = "ExitCode"
        case exited = "Exited"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        names = try container.decodeIfPresent([String].self, forKey: .names) ?? []
        image = try container.decodeIfPresent(String.self, forKey: .image) ?? ""
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? ""
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        if let seconds = try? container.decode(Int64.self, forKey: .created) {
            created = .unixSeconds(seconds)
        } else {
            created = .text(try container.decodeIfPresent(String.self, forKey: .created) ?? "")
        }
        exitCode = try container.decodeIfPresent(Int.self, forKey: .exitCode)
        exited = try container.decodeIfPresent(Bool.self, forKey: .exited)
    }
}

// MARK: - Wait and commit

/// Conditions of the compat `POST /containers/{id}/wait`.
public enum WaitCondition: String, Sendable {
    case notRunning = "not-running"
    case nextExit = "next-exit"
    case removed
}

private struct CompatWaitResult: Decodable {
    var statusCode: Int
    enum CodingKeys: String, CodingKey { case statusCode = "StatusCode" }
}

private struct CreatedID: Decodable {
    var id: String
    enum CodingKeys: String, CodingKey { case id = "Id" }
}

/// Long enough to mean "no deadline" for waits, shorter than the Int64 nanoseconds limit.
public let practicallyForever: Duration = .seconds(366 * 24 * 3600)

extension EngineClient {
    private static func containerPath(_ id: String, _ suffix: String = "") -> String {
        "/containers/\(EngineRequest.escape(id))\(suffix)"
    }

    /// Creates a container and returns its id.
    public func createContainer(name: String?, _ config: ContainerCreateConfig) async throws -> String {
        let query = name.map { [("name", $0)] } ?? []
        let request = try EngineRequest.json(.POST, "/containers/create", query: query, body: config)
        return try await send(request).decode(CreatedID.self).id
    }

    /// Starts a container; one that already runs is not an error (the engines answer 304).
    public func startContainer(_ id: String) async throws {
        do {
            _ = try await send(EngineRequest(.POST, Self.containerPath(id, "/start")))
        } catch EngineError.notModified {}
    }

    /// `POST /containers/{id}/rename` (compat, both engines): 409 when the name is in use.
    public func renameContainer(_ id: String, to name: String) async throws {
        _ = try await send(EngineRequest(.POST, Self.containerPath(id, "/rename"), query: [("name", name)]))
    }

    /// Podman's own inspect is faster than its compat one and has the same fields we read.
    public func inspectContainer(_ id: String, libpod: Bool = false) async throws -> ContainerInspect {
        let request = EngineRequest(.GET, Self.containerPath(id, "/json"), api: libpod ? .libpod : .compat)
        return try await send(request).decode(ContainerInspect.self)
    }

    /// All containers (stopped ones too) matching every label filter (`key` or `key=value`) and,
    /// when given, the engine's name filter (a regular expression matched anywhere in the name).
    public func listContainers(labels: [String], nameFilter: String?, libpod: Bool = false) async throws
        -> [ContainerListEntry]
    {
        var query = [("all", "true")]
        var filters: [String: [String]] = [:]
        if !labels.isEmpty { filters["label"] = labels }
        if let nameFilter { filters["name"] = [nameFilter] }
        if let parameter = try EngineRequest.filtersParameter(filters) { query.append(parameter) }
        let request = EngineRequest(.GET, "/containers/json", query: query, api: libpod ? .libpod : .compat)
        return try await send(request).decode([ContainerListEntry].self)
    }

    /// Stops with SIGTERM, then SIGKILL after `timeoutSeconds`; a stopped container is not an
    /// error (the engines answer 304).
    public func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        let request = EngineRequest(
            .POST, Self.containerPath(id, "/stop"), query: [("t", String(timeoutSeconds))],
            timeout: defaultTimeout + .seconds(timeoutSeconds))
        do {
            _ = try await send(request)
        } catch EngineError.notModified {}
    }

    public func killContainer(_ id: String, signal: String) async throws {
        _ = try await send(EngineRequest(.POST, Self.containerPath(id, "/kill"), query: [("signal", signal)]))
    }

    /// Removes a container; `volumes` also removes its anonymous volumes.
    public func removeContainer(_ id: String, force: Bool, volumes: Bool = true) async throws {
        let query = [("force", String(force)), ("v", String(volumes))]
        _ = try await send(EngineRequest(.DELETE, Self.containerPath(id), query: query))
    }

    /// The compat wait; answers the exit code. Blocks until the condition holds, so the head
    /// deadline is `timeout` (nil: no deadline).
    public func waitContainer(_ id: String, condition: WaitCondition, timeout: Duration? = nil) async throws -> Int {
        let request = EngineRequest(
            .POST, Self.containerPath(id, "/wait"), query: [("condition", condition.rawValue)],
            timeout: timeout ?? practicallyForever)
        return try await send(request).decode(CompatWaitResult.self).statusCode
    }

    /// Podman's own wait for the container to stop, polling at `interval` (the compat wait polls
    /// every 250 ms). `stopped` comes before `exited` (cleanup done); either has the exit code.
    /// Answers at once for a container that was never started.
    public func waitContainerStoppedLibpod(_ id: String, interval: String = "10ms", timeout: Duration? = nil)
        async throws -> Int
    {
        let request = EngineRequest(
            .POST, Self.containerPath(id, "/wait"),
            query: [("condition", "exited"), ("condition", "stopped"), ("interval", interval)],
            api: .libpod, timeout: timeout ?? practicallyForever)
        return try await send(request).decode(Int.self)
    }

    /// Commits the container to `repository:tag` and returns the image id. `pause` is always
    /// sent: the engines' defaults differ. `emptyConfig` sends `{}` as the body (Podman's compat
    /// commit fails on an empty one, "Decode(): EOF"); without it the container's config is kept.
    public func commitContainer(
        _ id: String, repository: String, tag: String, pause: Bool, changes: [String], emptyConfig: Bool
    ) async throws -> String {
        var query = [("container", id), ("repo", repository), ("tag", tag), ("pause", String(pause))]
        for change in changes { query.append(("changes", change)) }
        let body: EngineRequest.Body = emptyConfig ? .bytes(contentType: "application/json", Array("{}".utf8)) : .none
        return try await send(EngineRequest(.POST, "/commit", query: query, body: body)).decode(CreatedID.self).id
    }
}
