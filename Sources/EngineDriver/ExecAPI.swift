import PulledStreams
import NIOCore

// Exec sessions: `POST /containers/{id}/exec`, `POST /exec/{id}/start`, `GET /exec/{id}/json`.
// The same compat endpoints work on Docker and Podman.

/// The body of `POST /containers/{id}/exec`.
public struct ExecCreateConfig: Encodable, Sendable {
    public var cmd: [String]
    public var env: [String]?
    public var user: String?
    public var workingDir: String?
    public var attachStdin: Bool
    public var attachStdout = true
    public var attachStderr = true
    /// Without a TTY the output stays 8-byte framed, so stdout and stderr can be told apart;
    /// with one it is a single raw stream.
    public var tty: Bool

    public init(
        cmd: [String], env: [String]? = nil, user: String? = nil, workingDir: String? = nil, attachStdin: Bool,
        tty: Bool = false
    ) {
        self.cmd = cmd
        self.env = env
        self.user = user
        self.workingDir = workingDir
        self.attachStdin = attachStdin
        self.tty = tty
    }

    enum CodingKeys: String, CodingKey {
        case cmd = "Cmd"
        case env = "Env"
        case user = "User"
        case workingDir = "WorkingDir"
        case attachStdin = "AttachStdin"
        case attachStdout = "AttachStdout"
        case attachStderr = "AttachStderr"
        case tty = "Tty"
    }
}

/// What `GET /exec/{id}/json` says. Podman reports `ExitCode: 0` while the process still runs,
/// so `exitCode` means something only when `running` is false.
public struct ExecInspect: Decodable, Sendable {
    public var id: String
    public var running: Bool
    public var exitCode: Int?
    /// The process id in the engine host's PID namespace (both engines), 0 when not started.
    public var pid: Int?
    public var containerID: String?
    public var openStdin: Bool?
    public var processConfig: ProcessConfig?

    public struct ProcessConfig: Decodable, Sendable {
        public var tty: Bool?
    }

    enum CodingKeys: String, CodingKey {
        case id = "ID"
        case running = "Running"
        case exitCode = "ExitCode"
        case pid = "Pid"
        case containerID = "ContainerID"
        case openStdin = "OpenStdin"
        case processConfig = "ProcessConfig"
    }
}

struct ExecStartConfig: Encodable {
    var detach = false
    var tty = false
    enum CodingKeys: String, CodingKey {
        case detach = "Detach"
        case tty = "Tty"
    }
}

private struct CreatedID: Decodable {
    var id: String
    enum CodingKeys: String, CodingKey { case id = "Id" }
}

extension EngineClient {
    /// Creates an exec session and returns its id. Docker answers 409 for a container that is
    /// not running, Podman 500 ("container state improper"): callers that need the difference
    /// inspect the container.
    public func createExec(container: String, _ config: ExecCreateConfig) async throws -> String {
        let request = try EngineRequest.json(.POST, "/containers/\(EngineRequest.escape(container))/exec", body: config)
        return try await send(request).decode(CreatedID.self).id
    }

    /// Starts an exec without stdin; the body streams the 8-byte framed output until the
    /// process ends (the engine then closes the connection). `timeout` bounds the response head.
    public func startExec(_ id: String, timeout: Duration? = nil) async throws -> EngineStream {
        try await stream(
            EngineRequest.json(.POST, "/exec/\(EngineRequest.escape(id))/start", body: ExecStartConfig(), timeout: timeout))
    }

    /// Starts an exec on a hijacked connection: write stdin, `finishWriting()` for EOF, and read
    /// the framed output concurrently.
    /// `tty` must match the exec's creation: the engine then sends raw output instead of frames.
    public func startExecAttached(_ id: String, tty: Bool = false, timeout: Duration? = nil) async throws
        -> HijackedConnection
    {
        try await hijack(
            EngineRequest.json(
                .POST, "/exec/\(EngineRequest.escape(id))/start", body: ExecStartConfig(tty: tty), timeout: timeout))
    }

    /// Starts an exec and returns its demultiplexed output until the process ends. With `stdin`
    /// the exec runs on a hijacked connection (it must have been created with `attachStdin`):
    /// stdin is written while output is read — writing all of it first deadlocks once the
    /// output fills the pipes — then half-closed to deliver EOF. Output is read from the engine
    /// only as fast as the frames are consumed. Dropping the frames closes the engine
    /// connection; the process itself keeps running (no engine ends an exec then).
    public func attachExec(
        _ id: String, stdin: AsyncThrowingStream<[UInt8], any Error>?, timeout: Duration? = nil
    ) async throws -> ExecOutput {
        guard let stdin else {
            let output = try await startExec(id, timeout: timeout).body
            return ExecOutput(frames: .decoding(output, with: FrameStream(stdinWriter: nil)), close: output.close)
        }
        let connection = try await startExecAttached(id, timeout: timeout)
        let writer = Task {
            do {
                // Each chunk is on the socket before the next is pulled.
                for try await chunk in stdin {
                    try Task.checkCancellation()
                    try await connection.write(chunk)
                }
                try await connection.finishWriting()
            } catch {
                // The process exited or closed its stdin without reading everything:
                // what it did print still counts, so this is not an error.
            }
        }
        return ExecOutput(
            frames: .decoding(connection.output, with: FrameStream(stdinWriter: StdinWriter(writer))),
            close: connection.output.close)
    }

    public func inspectExec(_ id: String) async throws -> ExecInspect {
        try await send(EngineRequest(.GET, "/exec/\(EngineRequest.escape(id))/json")).decode(ExecInspect.self)
    }
}

/// The output of a started exec.
public struct ExecOutput: Sendable {
    /// Demultiplexed stdout and stderr, empty frames left out.
    public var frames: AsyncThrowingStream<Frame, any Error>
    /// Ends the output early from outside its consumer (a deadline): the engine connection closes.
    public var close: @Sendable () -> Void
}

/// Engine bytes to frames; keeps the stdin writer alive exactly as long as the output is read.
private struct FrameStream: PullDecoder {
    var decoder = FrameDecoder()
    let stdinWriter: StdinWriter?

    mutating func feed(_ chunk: ByteBuffer) throws -> [Frame] {
        try decoder.feed(chunk.readableBytesView).filter { !$0.payload.isEmpty }
    }

    mutating func finish() async throws -> [Frame] {
        try decoder.finish()
        return []
    }
}

/// Stops writing stdin once nobody reads the output any more.
private final class StdinWriter: Sendable {
    let task: Task<Void, Never>
    init(_ task: Task<Void, Never>) { self.task = task }
    deinit { task.cancel() }
}
