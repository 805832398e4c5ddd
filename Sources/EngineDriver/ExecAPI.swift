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
    /// Always false here: output stays 8-byte framed, so stdout and stderr can be told apart.
    public var tty = false

    public init(cmd: [String], env: [String]? = nil, user: String? = nil, workingDir: String? = nil, attachStdin: Bool) {
        self.cmd = cmd
        self.env = env
        self.user = user
        self.workingDir = workingDir
        self.attachStdin = attachStdin
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

    enum CodingKeys: String, CodingKey {
        case id = "ID"
        case running = "Running"
        case exitCode = "ExitCode"
        case pid = "Pid"
        case containerID = "ContainerID"
    }
}

private struct ExecStartConfig: Encodable {
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
    public func startExecAttached(_ id: String, timeout: Duration? = nil) async throws -> HijackedConnection {
        try await hijack(
            EngineRequest.json(.POST, "/exec/\(EngineRequest.escape(id))/start", body: ExecStartConfig(), timeout: timeout))
    }

    /// Starts an exec and returns its demultiplexed output until the process ends. With `stdin`
    /// the exec runs on a hijacked connection (it must have been created with `attachStdin`):
    /// stdin is written while output is read — writing all of it first deadlocks once the
    /// output fills the pipes — then half-closed to deliver EOF. Stopping iteration closes the
    /// engine connection; the process itself keeps running (no engine ends an exec then).
    public func attachExec(_ id: String, stdin: [UInt8]?, timeout: Duration? = nil) async throws
        -> AsyncThrowingStream<Frame, any Error>
    {
        let output: AsyncThrowingStream<ByteBuffer, any Error>
        let connection: HijackedConnection?
        if stdin != nil {
            let hijacked = try await startExecAttached(id, timeout: timeout)
            connection = hijacked
            output = hijacked.output
        } else {
            connection = nil
            output = try await startExec(id, timeout: timeout).body
        }
        let (frames, continuation) = AsyncThrowingStream.makeStream(of: Frame.self)
        let pump = Task {
            let writer = stdin.map { bytes in
                Task {
                    do {
                        var start = 0
                        while start < bytes.count, !Task.isCancelled {
                            let end = min(bytes.count, start + Self.stdinChunkSize)
                            try await connection?.write(Array(bytes[start..<end]))
                            start = end
                        }
                        try await connection?.finishWriting()
                    } catch {
                        // The process exited or closed its stdin without reading everything:
                        // what it did print still counts, so this is not an error.
                    }
                }
            }
            defer { writer?.cancel() }
            do {
                var decoder = FrameDecoder()
                for try await chunk in output {
                    for frame in try decoder.feed(chunk.readableBytesView) where !frame.payload.isEmpty {
                        continuation.yield(frame)
                    }
                }
                try decoder.finish()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in
            pump.cancel()
            connection?.close()
        }
        return frames
    }

    static let stdinChunkSize = 64 << 10

    public func inspectExec(_ id: String) async throws -> ExecInspect {
        try await send(EngineRequest(.GET, "/exec/\(EngineRequest.escape(id))/json")).decode(ExecInspect.self)
    }
}
