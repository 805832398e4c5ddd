import PulledStreams

/// A process a client drives interactively: its output (ending with `.exit` once it has
/// exited), its stdin, and its terminal size. Holding the events keeps the session; dropping
/// them ends an exec's process (as a dropped streamed exec does) or detaches from a container.
public struct InteractiveSession: Sendable {
    /// With a TTY all output is `.stdout`.
    public let tty: Bool
    public let events: AsyncThrowingStream<ExecEvent, any Error>
    /// Returns once the engine took the bytes: a process that stops reading holds the writer.
    public let write: @Sendable ([UInt8]) async throws -> Void
    /// End of file on the process's stdin.
    public let finishWriting: @Sendable () async throws -> Void
    /// Throws `OcimanError`.
    public let resize: @Sendable (TerminalSize) async throws -> Void
}

/// A created exec session, not started yet.
public struct ExecSessionInfo: Sendable, Equatable {
    public var id: String
    public var containerID: String
    public var tty: Bool
    public var stdin: Bool
}

extension Runtime {
    /// Creates an exec session to attach to later (`attachExecSession`); stdin is attached when
    /// `options.openStdin`. 404 for an unknown container, 409 for one that is not running.
    public func createExecSession(in id: String, _ options: ExecOptions) async throws(OcimanError) -> ExecSessionInfo {
        try Self.validate(options)
        guard options.stdin == nil else {
            throw .invalid(field: "stdin", message: "an exec session takes its stdin from the attached client")
        }
        do {
            let execID = try await engine.createExec(in: id, options)
            let state = try await engine.inspectExec(execID)
            return ExecSessionInfo(id: execID, containerID: state.containerID ?? id, tty: options.tty, stdin: options.openStdin)
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch EngineFailure.conflict {
            throw .conflict("container \(id) is not running")
        } catch {
            throw OcimanError(converting: error, context: "exec in container \(id)")
        }
    }

    /// 404 for an unknown exec session.
    public func execSessionState(_ execID: String) async throws(OcimanError) -> ExecState {
        do {
            return try await engine.inspectExec(execID)
        } catch EngineFailure.notFound {
            throw .notFound("no such exec session: \(execID)")
        } catch {
            throw OcimanError(converting: error, context: "exec session \(execID)")
        }
    }

    /// Starts an exec session on a two-way connection. 409 when it was started before (a
    /// session is attached once) or has ended.
    public func attachExecSession(_ execID: String) async throws(OcimanError) -> InteractiveSession {
        let state = try await execSessionState(execID)
        // A started exec has (or had) a process; both engines keep its PID after the exit.
        guard !state.running, (state.processID ?? 0) == 0 else {
            throw .conflict("exec session \(execID) was started already")
        }
        let engine = self.engine
        let connection = try await OcimanError.wrap("exec session \(execID)") {
            try await engine.startInteractiveExec(execID, tty: state.tty)
        }
        let session = ExecSession(runtime: self, execID: execID)
        return InteractiveSession(
            tty: state.tty,
            events: .decoding(
                connection.output,
                with: ExecEventDecoder(
                    session: session, containerID: state.containerID ?? "", hasStdin: state.openStdin, timeoutSeconds: nil)),
            write: connection.write,
            finishWriting: connection.finishWriting,
            resize: Self.resizer(what: "exec session \(execID)") { size in try await engine.resizeExec(execID, size) })
    }

    /// Sets the terminal size of a running exec session.
    public func resizeExecSession(_ execID: String, _ size: TerminalSize) async throws(OcimanError) {
        try Self.validate(size)
        do {
            try await engine.resizeExec(execID, size)
        } catch EngineFailure.notFound {
            throw .notFound("no such exec session: \(execID)")
        } catch EngineFailure.conflict {
            throw .conflict("exec session \(execID) is not running")
        } catch {
            // Docker answers 500 for an exec that is not running (created, or exited), or unknown.
            let state: ExecState
            do {
                state = try await engine.inspectExec(execID)
            } catch EngineFailure.notFound {
                throw .notFound("no such exec session: \(execID)")
            } catch {
                throw OcimanError(converting: error, context: "resize exec session \(execID)")
            }
            if !state.running { throw .conflict("exec session \(execID) is not running") }
            throw OcimanError(converting: error, context: "resize exec session \(execID)")
        }
    }

    /// Attaches to a running container's main process. The events end with `.exit` when the
    /// process exits while attached; a client that leaves detaches (the process keeps running,
    /// and an `auto_remove` container is removed by the engine once it exits).
    public func attachContainer(_ id: String) async throws(OcimanError) -> InteractiveSession {
        let inspected = try await onContainer(id) { try await engine.inspectContainer(id) }
        guard inspected.container.state.running else { throw .conflict("container \(id) is not running") }
        return try await OcimanError.wrap("attach to container \(id)") {
            try await Self.attach(to: inspected.container.id, tty: inspected.tty, engine: engine)
        }
    }

    private static func attach(to id: String, tty: Bool, engine: any ContainerEngine) async throws -> InteractiveSession {
        // Asked before the process can exit: an auto-removed container has no exit code to ask for afterwards.
        let exit = ExitWaiter(Task { try await engine.waitContainer(id, until: .nextExit) })
        let connection = try await engine.attachContainer(id, tty: tty)
        return InteractiveSession(
            tty: tty,
            events: .decoding(connection.output, with: AttachEventDecoder(containerID: id, exit: exit)),
            write: connection.write,
            finishWriting: connection.finishWriting,
            resize: resizer(what: "container \(id)") { size in try await engine.resizeContainer(id, size) })
    }

    /// Sets the terminal size of a running container's main process.
    public func resizeContainer(_ id: String, _ size: TerminalSize) async throws(OcimanError) {
        try Self.validate(size)
        do {
            try await engine.resizeContainer(id, size)
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch EngineFailure.conflict {
            throw .conflict("container \(id) is not running")
        } catch {
            let inspected = try await onContainer(id) { try await engine.inspectContainer(id) }
            if !inspected.container.state.running { throw .conflict("container \(id) is not running") }
            throw OcimanError(converting: error, context: "resize container \(id)")
        }
    }

    static func validate(_ size: TerminalSize) throws(OcimanError) {
        try OcimanError.checkBounds(size.rows, IntegerBounds.terminalCells, field: "rows")
        try OcimanError.checkBounds(size.columns, IntegerBounds.terminalCells, field: "columns")
    }

    /// A session's resize: validated, and retried for a short while when the engine says the
    /// process is not running, as it does for a resize sent right after the attach that reaches
    /// it before the process has its terminal.
    static func resizer(what: String, _ resize: @escaping @Sendable (TerminalSize) async throws -> Void)
        -> @Sendable (TerminalSize) async throws -> Void
    {
        { size in
            try validate(size)
            var pause = Duration.milliseconds(5)
            let deadline = ContinuousClock.now.advanced(by: .seconds(2))
            while true {
                do {
                    return try await resize(size)
                } catch let failure as EngineFailure where failure.isNotRunningYet && ContinuousClock.now < deadline {
                    try await Task.sleep(for: pause)
                    pause = min(pause * 2, .milliseconds(100))
                } catch {
                    throw OcimanError(converting: error, context: "resize \(what)")
                }
            }
        }
    }
}

/// An attach's output chunks to events, ending with the main process's exit code when the
/// output ended because it exited.
struct AttachEventDecoder: PullDecoder {
    let containerID: String
    let exit: ExitWaiter

    func feed(_ chunk: OutputChunk) -> [ExecEvent] {
        [.output(chunk.stream, chunk.bytes)]
    }

    func finish() async throws -> [ExecEvent] {
        do {
            return [.exit(code: try await exit.task.value)]
        } catch {
            throw OcimanError(converting: error, context: "the exit code of container \(containerID)")
        }
    }

    func fail(_ error: any Error) async throws -> [ExecEvent] {
        throw OcimanError(converting: error, context: "attach to container \(containerID)")
    }
}

/// The wait for a container's exit, for as long as its attach is read: a client that detaches
/// drops it, which ends the engine request.
final class ExitWaiter: Sendable {
    let task: Task<Int, any Error>
    init(_ task: Task<Int, any Error>) { self.task = task }
    deinit { task.cancel() }
}

extension EngineFailure {
    /// What the engines answer a resize that comes before the process has its terminal: 409,
    /// or Docker's 500.
    fileprivate var isNotRunningYet: Bool {
        switch self {
        case .conflict, .failed: true
        default: false
        }
    }
}
