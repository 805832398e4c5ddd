import PulledStreams
import Foundation
import Synchronization

/// What an exec's standard input reads before end of file.
public enum ExecStdin: Sendable {
    case bytes([UInt8])
    /// Pulled a chunk at a time as the engine takes them.
    case chunks(AsyncThrowingStream<[UInt8], any Error>)

    static let chunkSize = 64 << 10

    var chunks: AsyncThrowingStream<[UInt8], any Error> {
        switch self {
        case .chunks(let chunks):
            return chunks
        case .bytes(let bytes):
            let offset = Mutex(0)
            return AsyncThrowingStream {
                offset.withLock { offset in
                    guard offset < bytes.count else { return nil }
                    let end = min(bytes.count, offset + Self.chunkSize)
                    defer { offset = end }
                    return Array(bytes[offset..<end])
                }
            }
        }
    }
}

public struct ExecOptions: Sendable {
    /// The program and its arguments; not empty.
    public var command: [String]
    public var environment: [String: String]
    /// `user`, `uid`, `user:group` or `uid:gid`; nil for the container's user.
    public var user: String?
    /// An absolute path; nil for the container's working directory.
    public var workdir: String?
    /// Fed to the process's standard input, then end of file; nil leaves stdin unattached.
    public var stdin: ExecStdin?
    /// Give up (and end the process) after this many seconds; at least 1.
    public var timeoutSeconds: Int?
    /// The process gets a terminal (output is then one stream, stdout).
    public var tty = false
    /// Stdin is attached for an interactive session to write, rather than fed from `stdin`.
    public var openStdin = false

    public init(
        command: [String],
        environment: [String: String] = [:],
        user: String? = nil,
        workdir: String? = nil,
        stdin: ExecStdin? = nil,
        timeoutSeconds: Int? = nil
    ) {
        self.command = command
        self.environment = environment
        self.user = user
        self.workdir = workdir
        self.stdin = stdin
        self.timeoutSeconds = timeoutSeconds
    }
}

/// What a streamed exec produces: output chunks as they come, then the exit code.
public enum ExecEvent: Sendable, Equatable {
    case output(StandardStream, [UInt8])
    case exit(code: Int)
}

public struct ExecResult: Sendable, Equatable {
    public var exitCode: Int
    public var stdout: [UInt8]
    public var stderr: [UInt8]
}

extension Runtime {
    /// A buffered exec holds all output in memory; beyond this the client must stream.
    public static let maxBufferedExecOutput = 64 << 20

    /// Runs a command to completion and collects its output.
    public func exec(_ id: String, _ options: ExecOptions) async throws(OcimanError) -> ExecResult {
        let events = try await execStream(id, options)
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        do {
            for try await event in events {
                switch event {
                case .output(.stdout, let bytes): stdout += bytes
                case .output(.stderr, let bytes): stderr += bytes
                case .exit(let code): return ExecResult(exitCode: code, stdout: stdout, stderr: stderr)
                }
                if stdout.count + stderr.count > Self.maxBufferedExecOutput {
                    // Leaving the loop ends the stream, which ends the process.
                    throw OcimanError.engineFailure(
                        "the command printed more than \(Self.maxBufferedExecOutput >> 20) MiB, the limit of a buffered answer; send Accept: application/x-ndjson to stream its output")
                }
            }
            throw OcimanError.engineFailure("the exec in container \(id) ended without an exit code")
        } catch {
            throw OcimanError(converting: error, context: "exec in container \(id)")
        }
    }

    /// Starts a command and streams its output, ending with `.exit`. Bad input, an unknown
    /// container (404) or one that is not running (409) fail here, before any event. Output is
    /// read from the engine only as fast as the stream is consumed. The process is ended when
    /// the consumer drops the stream early, when `timeoutSeconds` pass (the stream then fails
    /// with `.timedOut`), or when the engine connection breaks.
    public func execStream(_ id: String, _ options: ExecOptions) async throws(OcimanError)
        -> AsyncThrowingStream<ExecEvent, any Error>
    {
        try Self.validate(options)
        let execID = try await createExec(in: id, options)
        let output = try await OcimanError.wrap("exec in container \(id)") {
            try await engine.startExec(execID, stdin: options.stdin?.chunks)
        }
        let session = ExecSession(runtime: self, execID: execID)
        if let seconds = options.timeoutSeconds { session.endAfter(seconds: seconds, closing: output.close) }
        return .decoding(
            output.output,
            with: ExecEventDecoder(
                session: session, containerID: id, hasStdin: options.stdin != nil, timeoutSeconds: options.timeoutSeconds))
    }

    static func validate(_ options: ExecOptions) throws(OcimanError) {
        guard let program = options.command.first else {
            throw .invalid(field: "command", message: "command must name a program to run")
        }
        guard !program.isEmpty else {
            throw .invalid(field: "command", message: "the program (the first element of command) must not be empty")
        }
        if let index = options.command.firstIndex(where: { $0.utf8.contains(0) }) {
            throw .invalid(field: "command", message: "element \(index) of command contains a NUL byte")
        }
        do {
            try Validation.environment(options.environment)
            if let user = options.user { try Validation.user(user) }
        } catch {
            throw OcimanError(error)
        }
        if let workdir = options.workdir {
            guard workdir.hasPrefix("/"), !workdir.utf8.contains(0) else {
                throw .invalid(field: "workdir", message: "workdir must be an absolute path, not \"\(workdir)\"")
            }
        }
        try OcimanError.checkBounds(options.timeoutSeconds, IntegerBounds.execTimeoutSeconds, field: "timeout_seconds")
    }

    /// Creates the exec session: 404 for an unknown container, 409 for one that is not running.
    private func createExec(in id: String, _ options: ExecOptions) async throws(OcimanError) -> String {
        do {
            return try await engine.createExec(in: id, options)
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch EngineFailure.conflict {
            throw .conflict("container \(id) is not running")
        } catch {
            throw OcimanError(converting: error, context: "exec in container \(id)")
        }
    }

    /// The exit code once the engine reports the process ended. The output usually closes
    /// after the code is recorded; if not yet, ask again with a short, growing pause;
    /// nil when it still runs after `limit`.
    static func exitCode(of execID: String, engine: any ContainerEngine, within limit: Duration? = nil) async throws
        -> Int?
    {
        let deadline = limit.map { ContinuousClock.now.advanced(by: $0) }
        var pause = Duration.milliseconds(1)
        while true {
            let inspect = try await engine.inspectExec(execID)
            if !inspect.running, let code = inspect.exitCode { return code }
            if let deadline, ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    /// Ends the exec processes an earlier ocimand (killed, or crashed) left running; at start.
    public func endLeftoverExecs() async {
        for execID in execLedger.leftovers() {
            logger.info("ending an exec left by an earlier ocimand", metadata: ["exec": "\(execID)"])
            await endExec(execID)
        }
    }

    /// Ends the exec processes still running; on shutdown, once no request is left to read them.
    public func endRunningExecs() async {
        await withTaskGroup(of: Void.self) { group in
            for execID in execLedger.running { group.addTask { await self.endExec(execID) } }
        }
    }

    /// Kills a still-running exec process and its descendants. Neither engine can end an exec
    /// (there is no such endpoint) and `Pid` is in the host's PID namespace, so the process is
    /// signalled from here, after checking through its cgroup that it belongs to the container
    /// (a PID can be reused). When the host does not let us signal it, `kill` runs inside the
    /// container against the PID as the container sees it.
    func endExec(_ execID: String) async {
        defer { execLedger.closed(execID) }
        guard let inspect = try? await engine.inspectExec(execID), inspect.running,
            let pid = inspect.processID, pid > 0, let container = inspect.containerID
        else { return }
        switch HostProcessTree.kill(root: Int32(clamping: pid), cgroupMention: container) {
        case .killed(let count):
            logger.debug("ended exec", metadata: ["exec": "\(execID)", "pid": "\(pid)", "processes": "\(count)"])
        case .notVisible:
            logger.warning(
                "cannot end exec: its process is not visible in this host's /proc",
                metadata: ["exec": "\(execID)", "pid": "\(pid)"])
        case .denied(let namespacePID):
            guard let namespacePID else { return }
            let killer = ExecOptions(command: ["kill", "-KILL", String(namespacePID)], user: "0", timeoutSeconds: 10)
            do {
                let result = try await exec(container, killer)
                if result.exitCode != 0 {
                    logger.warning(
                        "cannot end exec: kill inside the container failed",
                        metadata: ["exec": "\(execID)", "stderr": "\(String(decoding: result.stderr, as: UTF8.self))"])
                }
            } catch {
                logger.warning("cannot end exec", metadata: ["exec": "\(execID)", "error": "\(error)"])
            }
        }
    }
}

/// One running exec, for as long as its output stream exists. When the stream is dropped
/// before the process has exited (the client left, or the output broke), the process is ended:
/// no engine does that when its connection closes.
final class ExecSession: Sendable {
    let runtime: Runtime
    let execID: String
    private let exited = Atomic<Bool>(false)
    private let timedOut = Atomic<Bool>(false)
    private let tasks = Mutex<[Task<Void, Never>]>([])
    /// The process as this host sees it, once learnt: ending it then needs no engine call, so
    /// it happens at once, before the engine connection closes (Podman's conmon drains the
    /// output of an exec nobody is attached to, at full speed, until the process ends).
    private let hostProcess = Mutex<HostProcess?>(nil)

    /// Execs this short never have their process looked up: most finish first.
    static let lookupDelay = Duration.milliseconds(100)

    init(runtime: Runtime, execID: String) {
        self.runtime = runtime
        self.execID = execID
        runtime.execLedger.opened(execID)
        let lookup = Task { [weak self, runtime, execID] in
            guard (try? await Task.sleep(for: Self.lookupDelay)) != nil,
                let inspect = try? await runtime.engine.inspectExec(execID), inspect.running,
                let pid = inspect.processID, let container = inspect.containerID,
                let process = HostProcess(pid: Int32(clamping: pid), container: container)
            else { return }
            self?.hostProcess.withLock { $0 = process }
        }
        tasks.withLock { $0.append(lookup) }
    }

    var hasTimedOut: Bool { timedOut.load(ordering: .acquiring) }

    func markExited() {
        exited.store(true, ordering: .releasing)
        runtime.execLedger.closed(execID)
    }

    /// After `seconds`, ends the process and the output, whether or not anyone is reading.
    func endAfter(seconds: Int, closing close: @escaping @Sendable () -> Void) {
        let timer = Task { [weak self, runtime, execID] in
            guard (try? await Task.sleep(for: .seconds(seconds))) != nil else { return }
            self?.timedOut.store(true, ordering: .releasing)
            close()
            await runtime.endExec(execID)
        }
        tasks.withLock { $0.append(timer) }
    }

    deinit {
        for task in tasks.withLock({ $0 }) { task.cancel() }
        guard !exited.load(ordering: .acquiring) else { return }
        if let process = hostProcess.withLock({ $0 }), case .killed = process.kill() {
            runtime.execLedger.closed(execID)
            return
        }
        // Outside the (possibly cancelled) task of the request.
        Task { [runtime, execID] in await runtime.endExec(execID) }
    }
}

/// Output chunks to exec events, ending with the exit code the engine records.
struct ExecEventDecoder: PullDecoder {
    let session: ExecSession
    let containerID: String
    let hasStdin: Bool
    let timeoutSeconds: Int?

    func feed(_ chunk: OutputChunk) -> [ExecEvent] {
        [.output(chunk.stream, chunk.bytes)]
    }

    func finish() async throws -> [ExecEvent] {
        if let failure = timeoutFailure { throw failure }
        guard let code = try await Runtime.exitCode(of: session.execID, engine: session.runtime.engine) else {
            throw OcimanError.engineFailure("the exec \(session.execID) never reported its exit")
        }
        session.markExited()
        return [.exit(code: code)]
    }

    func fail(_ error: any Error) async throws -> [ExecEvent] {
        if let failure = timeoutFailure { throw failure }
        // A process that exits without reading all its stdin leaves bytes unread on the
        // engine's side, whose close may then reset the connection after the last output (Podman
        // does, and records the exit a moment later): the exit code still counts.
        if hasStdin, case EngineFailure.unavailable = error,
            let code = try? await Runtime.exitCode(of: session.execID, engine: session.runtime.engine, within: .seconds(2))
        {
            session.markExited()
            return [.exit(code: code)]
        }
        throw OcimanError(converting: error, context: "exec in container \(containerID)")
    }

    private var timeoutFailure: OcimanError? {
        guard session.hasTimedOut, let timeoutSeconds else { return nil }
        return .timedOut("the command did not finish within \(timeoutSeconds) s and was killed", containerID: containerID)
    }
}

