/// What a container engine can do, as the runtime needs it. One adapter per engine conforms
/// (Docker, Podman; tests use an in-memory one) and owns that engine's quirks: which routes
/// it takes, how its errors are classified, how waits and commits behave. The runtime never
/// asks which engine it drives.
///
/// Errors: every method throws `EngineFailure` for what the engine answered (or
/// `CancellationError`). Streams are pulled: nothing is read from the engine until the
/// consumer asks, and a consumer that stops iterating ends the engine operation.
public protocol ContainerEngine: Sendable {
    /// What `/ready` and `/backend` report; the runtime only passes it on.
    var kind: BackendKind { get }
    /// Where the engine is reached, e.g. `unix:///var/run/docker.sock`.
    var endpoint: String { get }

    /// Checks that the endpoint is this adapter's engine, negotiates the API version and
    /// reads what stays fixed while it runs (its version). Called once at startup.
    func connect() async throws
    /// True when the engine answers now (a short deadline, no retries).
    func answers() async -> Bool
    /// Version, rootless mode and the default bridge network.
    func info() async throws -> EngineInfo

    // MARK: Containers

    /// Creates a container and answers its id. `.conflict` when the name is in use.
    func createContainer(_ config: ContainerConfig) async throws -> String
    /// Starting a running container is not an error. `.rejected` (or `.failed`) when what the
    /// request asked cannot start (a missing executable, a host port in use).
    func startContainer(_ id: String) async throws
    /// By full id, unique id prefix or name.
    func inspectContainer(_ id: String) async throws -> InspectedContainer
    /// Stopped containers too; every label filter (`key` or `key=value`) must match and, when
    /// given, the name exactly.
    func listContainers(labels: [String], name: String?) async throws -> [ContainerSummary]
    /// `.conflict` when the name is in use.
    func renameContainer(_ id: String, to name: String) async throws
    /// SIGTERM, then SIGKILL after `timeoutSeconds`; a stopped container is not an error.
    func stopContainer(_ id: String, timeoutSeconds: Int) async throws
    /// `.conflict` when the container is not running; `.rejected` for an unknown signal.
    func killContainer(_ id: String, signal: String) async throws
    /// Removes it with its anonymous volumes; `.conflict` when it runs and `force` is false.
    func removeContainer(_ id: String, force: Bool) async throws
    /// Blocks until the condition holds and answers the exit code.
    func waitContainer(_ id: String, until condition: ContainerWaitCondition) async throws -> Int
    /// Commits `id` to `repository:tag` and answers the image id. `pause` is honoured as given
    /// (the engines' defaults differ). `.rejected` when a change is refused.
    func commitContainer(_ id: String, repository: String, tag: String, pause: Bool, changes: [String]) async throws
        -> String
    /// Resolves the container first (`.notFound` before any line), then streams its output as
    /// lines; with `follow` until the container stops.
    func containerLogs(_ id: String, _ options: LogOptions) async throws -> AsyncThrowingStream<LogLine, any Error>

    // MARK: Events

    /// Container and image events as they happen, from every client of the engine (its CLI
    /// included), ending at `filter.until` or when the consumer leaves. The engine is asked for
    /// what it can filter itself; every event yielded matches `filter`.
    func events(_ filter: EventFilter) async throws -> AsyncThrowingStream<EngineEvent, any Error>

    // MARK: Exec

    /// Creates an exec session (stdin attached when `options.stdin` is set) and answers its
    /// id. `.conflict` when the container is not running.
    func createExec(in container: String, _ options: ExecOptions) async throws -> String
    /// Starts the exec; `stdin` is pulled a chunk at a time and written while the output is
    /// read, then closed. Dropping the output ends the connection, not the process.
    func startExec(_ id: String, stdin: AsyncThrowingStream<[UInt8], any Error>?) async throws -> ExecAttachment
    func inspectExec(_ id: String) async throws -> ExecState

    // MARK: Terminals

    /// Starts an exec created with `openStdin` on a two-way connection; `tty` as it was created.
    func startInteractiveExec(_ id: String, tty: Bool) async throws -> ProcessConnection
    /// `.conflict` when the exec is not running.
    func resizeExec(_ id: String, _ size: TerminalSize) async throws
    /// Attaches to the main process (`tty` as the container was created; with one, the output
    /// written before the attach comes first). Closing the connection detaches.
    func attachContainer(_ id: String, tty: Bool) async throws -> ProcessConnection
    /// `.conflict` when the container is not running.
    func resizeContainer(_ id: String, _ size: TerminalSize) async throws

    // MARK: Images

    func listImages() async throws -> [ImageInfo]
    func inspectImage(_ reference: String) async throws -> ImageInfo
    func tagImage(_ reference: String, repository: String, tag: String) async throws
    func removeImage(_ reference: String, force: Bool) async throws
    /// Builds from a tar `context` uploaded as it is pulled. A build the engine refuses
    /// outright throws; one that fails while running ends its stream with `.failed`.
    func buildImage(_ request: ImageBuildRequest, context: AsyncThrowingStream<[UInt8], any Error>) async throws
        -> AsyncThrowingStream<BuildProgress, any Error>
    /// `tag` may be a digest. Registry failures end the stream with `.failed`, or throw
    /// before it when the engine refuses at once (with its status, for classification).
    /// Without `credentials` the engine uses what it has configured.
    func pullImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws
        -> AsyncThrowingStream<TransferProgress, any Error>
    func pushImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws
        -> AsyncThrowingStream<TransferProgress, any Error>
}
