import EngineDriver
import OcimanCore
import PulledStreams
import Synchronization

/// What Docker and Podman serve alike on the Docker-compatible API. Each adapter conforms and
/// implements the rest (`ContainerEngine` calls where the engines differ) itself.
protocol CompatibleEngine: ContainerEngine {
    var client: EngineClient { get }
    /// Whether the endpoint must answer `/_ping` as Podman (with a libpod version).
    var speaksLibpod: Bool { get }
    /// The engine version, read at `connect`.
    var version: EngineVersionCache { get }
    /// The network containers join by default.
    var bridgeNetwork: String { get }
    /// Whether a commit must send an empty config body (Podman) rather than none (Docker).
    var commitsWithEmptyConfig: Bool { get }
    /// Where clients reach ports published on every address; nil for an engine on this machine.
    var publishedPortHost: String? { get }
    /// Each engine reports rootless mode in its own place.
    func isRootless() async throws -> Bool
    /// The event ociman reports for the engine's `type` and `action`, nil for those it does not.
    static func eventKind(type: String, action: String) -> EngineEvent.Kind?
}

/// The engine version, read once: it changes only with a restart, and Podman's `/version`
/// takes ≈ 300 ms (SPEC §9).
final class EngineVersionCache: Sendable {
    private let known = Mutex<String?>(nil)

    func value(reading read: () async throws -> String) async throws -> String {
        if let known = known.withLock({ $0 }) { return known }
        let version = try await read()
        known.withLock { $0 = version }
        return version
    }
}

/// The engine must answer a build once the whole context is uploaded; a slow client
/// uploading a large tar is part of that wait, so the deadline is generous.
private let buildResponseTimeout: Duration = .seconds(3600)
/// Pulls wait for the registry before the engine answers; Docker retries unreachable
/// registries for over a minute.
private let transferResponseTimeout: Duration = .seconds(600)

extension CompatibleEngine {
    var endpoint: String { client.transport.endpoint }

    func answers() async -> Bool {
        (try? await client.send(EngineRequest(.GET, "/_ping", api: .unversioned, timeout: .seconds(2)))) != nil
    }

    /// Pings (which negotiates the API version), checks the endpoint is the expected engine
    /// and reads its version.
    func connect() async throws {
        try await classified {
            let ping = try await client.ping()
            if ping.isPodman != speaksLibpod {
                throw EngineFailure.unavailable("\(endpoint) is \(ping.isPodman ? "Podman" : "Docker"), not \(kind.rawValue)")
            }
            _ = try await version.value { try await client.version().version }
        }
    }

    /// The negotiated API version, rootless mode, and the bridge network's subnets and gateway.
    func info() async throws -> EngineInfo {
        try await classified {
            let ping: EngineClient.Ping
            if let known = client.negotiatedPing { ping = known } else { ping = try await client.ping() }
            let version = try await version.value { try await client.version().version }
            let rootless = try await isRootless()
            let configs = try await client.inspectNetwork(bridgeNetwork).ipam?.config ?? []
            return EngineInfo(
                version: version, apiVersion: ping.apiVersion, rootless: rootless,
                bridgeSubnets: configs.compactMap(\.subnet),
                hostGateway: HostGateway.address(gateways: configs.compactMap(\.gateway), subnets: configs.compactMap(\.subnet)))
        }
    }

    // MARK: Containers

    /// The request's `pause` is sent as given: Docker pauses by default, Podman does not.
    func commitContainer(_ id: String, repository: String, tag: String, pause: Bool, changes: [String]) async throws
        -> String
    {
        try await classified {
            try await client.commitContainer(
                id, repository: repository, tag: tag, pause: pause, changes: changes, emptyConfig: commitsWithEmptyConfig)
        }
    }

    /// Both engines answer a name in use with 409 when they see it themselves.
    func createCompatContainer(_ config: ContainerConfig) async throws -> String {
        do {
            return try await classified {
                try await client.createContainer(name: config.name, ContainerMapping.createBody(config))
            }
        } catch EngineFailure.conflict(let message) {
            throw EngineFailure.conflict("container name \"\(config.name ?? "")\" is already in use: \(message)")
        }
    }

    func startContainer(_ id: String) async throws {
        try await classified { try await client.startContainer(id) }
    }

    func renameContainer(_ id: String, to name: String) async throws {
        try await classified { try await client.renameContainer(id, to: name) }
    }

    func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        try await classified { try await client.stopContainer(id, timeoutSeconds: timeoutSeconds) }
    }

    func containerLogs(_ id: String, _ options: LogOptions) async throws -> AsyncThrowingStream<LogLine, any Error> {
        let state = try await classified { try await client.containerProcessState(id) }
        // Podman sends the head of a follow only with the first output, which may be much later.
        let headTimeout: Duration? = options.follow ? practicallyForever : nil
        // The request goes out on the first pull, so the caller's answer need not wait for it.
        let output = EngineBody.deferred { [client] in
            try await client.containerLogs(
                state.id, follow: options.follow, tail: options.tail, since: options.since,
                timestamps: options.timestamps, timeout: headTimeout
            ).body
        }
        return .decoding(output, with: LogLineDecoder(framed: !state.tty, timestamps: options.timestamps))
    }

    // MARK: Events

    /// Label and container filters go to the engine; the kinds, whose names differ between
    /// engines, are filtered as the stream is decoded.
    func events(_ filter: EventFilter) async throws -> AsyncThrowingStream<EngineEvent, any Error> {
        var filters: [String: [String]] = [:]
        if filter.containersOnly { filters["type"] = ["container"] }
        if !filter.labels.isEmpty { filters["label"] = filter.labels }
        if !filter.containers.isEmpty { filters["container"] = filter.containers }
        let response = try await classified {
            try await client.events(
                filters: filters, since: filter.since.map(Self.unixTimeParameter), until: filter.until.map(Self.unixTimeParameter))
        }
        return .decoding(response.body, with: EventDecoder(filter: filter) { Self.eventKind(type: $0, action: $1) })
    }

    /// Unix seconds as both engines parse them: whole seconds, a dot, nine digits.
    static func unixTimeParameter(_ seconds: Double) -> String {
        let nanoseconds = Int64((seconds * 1e9).rounded(.down))
        let fraction = String(nanoseconds % 1_000_000_000)
        return "\(nanoseconds / 1_000_000_000)." + String(repeating: "0", count: 9 - fraction.count) + fraction
    }

    // MARK: Exec

    func createCompatExec(in container: String, _ options: ExecOptions) async throws -> String {
        let config = ExecCreateConfig(
            cmd: options.command, env: ContainerMapping.environment(options.environment), user: options.user,
            workingDir: options.workdir, attachStdin: options.stdin != nil || options.openStdin, tty: options.tty)
        return try await classified { try await client.createExec(container: container, config) }
    }

    func startExec(_ id: String, stdin: AsyncThrowingStream<[UInt8], any Error>?) async throws -> ExecAttachment {
        let output = try await classified { try await client.attachExec(id, stdin: stdin) }
        return ExecAttachment(output: .decoding(output.frames, with: OutputChunkDecoder()), close: output.close)
    }

    func inspectExec(_ id: String) async throws -> ExecState {
        let inspect = try await classified { try await client.inspectExec(id) }
        var state = ExecState(
            running: inspect.running, exitCode: inspect.exitCode, processID: inspect.pid, containerID: inspect.containerID)
        state.tty = inspect.processConfig?.tty ?? false
        state.openStdin = inspect.openStdin ?? false
        return state
    }

    // MARK: Terminals

    func startInteractiveExec(_ id: String, tty: Bool) async throws -> ProcessConnection {
        ProcessConnection(try await classified { try await client.startExecAttached(id, tty: tty) }, tty: tty)
    }

    func resizeExec(_ id: String, _ size: TerminalSize) async throws {
        try await classified { try await client.resizeExec(id, TerminalCells(rows: size.rows, columns: size.columns)) }
    }

    func attachContainer(_ id: String, tty: Bool) async throws -> ProcessConnection {
        ProcessConnection(try await classified { try await client.attachContainer(id, replay: tty) }, tty: tty)
    }

    func resizeContainer(_ id: String, _ size: TerminalSize) async throws {
        try await classified { try await client.resizeContainer(id, TerminalCells(rows: size.rows, columns: size.columns)) }
    }

    // MARK: Images

    func listImages() async throws -> [ImageInfo] {
        try await classified { try await client.listImages() }.map(ImageMapping.info)
    }

    func inspectImage(_ reference: String) async throws -> ImageInfo {
        ImageMapping.info(try await classified { try await client.inspectImage(reference) })
    }

    func tagImage(_ reference: String, repository: String, tag: String) async throws {
        try await classified { try await client.tagImage(reference, repository: repository, tag: tag) }
    }

    func removeImage(_ reference: String, force: Bool) async throws {
        try await classified { try await client.removeImage(reference, force: force) }
    }

    func buildImage(_ request: ImageBuildRequest, context: AsyncThrowingStream<[UInt8], any Error>) async throws
        -> AsyncThrowingStream<BuildProgress, any Error>
    {
        .decoding(try await compatBuild(request, context: context).body, with: BuildProgressDecoder())
    }

    /// Starts a build on the compat `/build`; `cgroupParent` places its steps' processes.
    func compatBuild(
        _ request: ImageBuildRequest, context: AsyncThrowingStream<[UInt8], any Error>, cgroupParent: String? = nil
    ) async throws -> EngineStream {
        let options = EngineBuildOptions(
            tags: request.tags, dockerfile: request.dockerfile, buildArguments: request.buildArguments,
            labels: request.labels, target: request.target, noCache: request.noCache, pull: request.pull,
            cgroupParent: cgroupParent)
        return try await classified {
            try await client.build(options, context: context, timeout: buildResponseTimeout)
        }
    }

    func pullImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws
        -> AsyncThrowingStream<TransferProgress, any Error>
    {
        let response = try await classified {
            try await client.pullImage(repository, tag: tag, auth: credentials.map(Self.registryAuth), timeout: transferResponseTimeout)
        }
        return .decoding(response.body, with: TransferProgressDecoder())
    }

    func pushImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws
        -> AsyncThrowingStream<TransferProgress, any Error>
    {
        let response = try await classified {
            try await client.pushImage(repository, tag: tag, auth: credentials.map(Self.registryAuth), timeout: transferResponseTimeout)
        }
        return .decoding(response.body, with: TransferProgressDecoder())
    }
}

extension CompatibleEngine {
    /// Both engines read one login from `X-Registry-Auth` in the docker CLI's form.
    static func registryAuth(_ credentials: RegistryCredentials) -> RegistryAuth {
        RegistryAuth(username: credentials.username, password: credentials.password, serverAddress: credentials.serverAddress)
    }
}
