import Foundation
import OcimanCore
import Synchronization

/// A `ContainerEngine` that keeps containers, execs and images in memory, for in-process tests
/// of the runtime and the handlers: no socket, no engine, safe to run in parallel.
///
/// Containers run until stopped, killed or told to exit (`exit(_:code:)`); what a container
/// prints and what an exec does are scripted. Every call fails with `.unavailable` while
/// `reachable` is false.
public final class InMemoryEngine: ContainerEngine {
    public let kind: BackendKind
    public let endpoint = "memory://engine"

    /// What a command run by `exec` does.
    public struct ExecScript: Sendable {
        public var output: [OutputChunk]
        public var exitCode: Int
        /// Runs until its output is closed (`sleep`), then reports no exit.
        public var hangs: Bool
        /// Prints what it reads from stdin (`cat`), after `output`.
        public var echoesStdin: Bool

        public init(output: [OutputChunk] = [], exitCode: Int = 0, hangs: Bool = false, echoesStdin: Bool = false) {
            self.output = output
            self.exitCode = exitCode
            self.hangs = hangs
            self.echoesStdin = echoesStdin
        }
    }

    struct StoredContainer {
        var id: String
        var config: ContainerConfig
        var running = false
        var exitCode: Int?
        var logs: [LogLine] = []
    }

    struct StoredExec {
        var containerID: String
        var script: ExecScript
        var running = false
        var exitCode: Int?
    }

    struct State {
        var reachable = true
        var containers: [String: StoredContainer] = [:]
        var execs: [String: StoredExec] = [:]
        var images: [String: ImageInfo] = [:]
        var nextID = 1
        /// What a new container prints when it starts.
        var startupOutput: [String: [LogLine]] = [:]
        var buildScript: [BuildProgress]?
        var calls: [String] = []
    }

    let state = Mutex(State())
    /// Open `events` streams, each with its filter.
    let subscribers = Mutex<[Int: (filter: EventFilter, sink: AsyncThrowingStream<EngineEvent, any Error>.Continuation)]>([:])

    /// An engine that knows `images` (references, e.g. `localhost/busybox:test`).
    public init(kind: BackendKind = .docker, images: [String] = ["localhost/busybox:test"]) {
        self.kind = kind
        state.withLock { state in
            for (index, reference) in images.enumerated() {
                state.images[reference] = ImageInfo(
                    id: "sha256:\(String(repeating: "0", count: 63))\(index)", references: [reference], labels: [:],
                    created: "2025-01-01T00:00:00Z", size: 1)
            }
        }
    }

    // MARK: Test controls

    /// A commit change containing this is refused by the engine.
    public static let refusedChange = "refused-by-engine"

    public var reachable: Bool {
        get { state.withLock { $0.reachable } }
        set { state.withLock { $0.reachable = newValue } }
    }

    /// Engine calls made so far, by protocol method name.
    public var calls: [String] { state.withLock { $0.calls } }

    /// Lines a container created from `image` prints when it starts.
    public func onStart(of image: String, prints lines: [LogLine]) {
        state.withLock { $0.startupOutput[image] = lines }
    }

    /// The progress the next builds report instead of one successful step.
    public func scriptBuilds(_ progress: [BuildProgress]) {
        state.withLock { $0.buildScript = progress }
    }

    /// The container's main process exits.
    public func exit(_ id: String, code: Int) {
        state.withLock { state in
            guard let key = Self.resolve(id, in: state) else { return }
            state.containers[key]?.running = false
            state.containers[key]?.exitCode = code
            if let container = state.containers[key] { emit(.die, container, exitCode: code) }
            if state.containers[key]?.config.autoRemove == true { state.containers[key] = nil }
        }
    }

    public func containerIDs() -> [String] { state.withLock { Array($0.containers.keys) } }

    // MARK: Events

    /// Live events only (`since` is not replayed); the stream ends at `until` only when the
    /// consumer leaves.
    public func events(_ filter: EventFilter) async throws -> AsyncThrowingStream<EngineEvent, any Error> {
        try call("events")
        let (stream, sink) = AsyncThrowingStream.makeStream(of: EngineEvent.self, bufferingPolicy: .bufferingOldest(1024))
        let key = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        subscribers.withLock { $0[key] = (filter, sink) }
        sink.onTermination = { [weak self] _ in self?.subscribers.withLock { _ = $0.removeValue(forKey: key) } }
        return stream
    }

    private func emit(_ kind: EngineEvent.Kind, _ container: StoredContainer, exitCode: Int? = nil) {
        let event = EngineEvent(
            kind: kind, id: container.id, name: container.config.name, image: container.config.image,
            exitCode: exitCode, labels: container.config.labels,
            timeNano: Int64(Date().timeIntervalSince1970 * 1e9))
        for (filter, sink) in subscribers.withLock({ Array($0.values) }) where filter.matches(event) {
            sink.yield(event)
        }
    }

    // MARK: Engine

    public func connect() async throws { try call("connect") }

    public func answers() async -> Bool { (try? call("answers")) != nil }

    public func info() async throws -> EngineInfo {
        try call("info")
        return EngineInfo(
            version: "0.0-memory", apiVersion: "1.41", rootless: false, bridgeSubnets: ["10.0.0.0/24"], hostGateway: "10.0.0.1")
    }

    public func createContainer(_ config: ContainerConfig) async throws -> String {
        try call("createContainer")
        return try state.withLock { state in
            guard state.images[config.image] != nil else { throw EngineFailure.notFound("No such image: \(config.image)") }
            if let name = config.name, state.containers.values.contains(where: { $0.config.name == name }) {
                throw EngineFailure.conflict("container name \"\(name)\" is already in use")
            }
            let id = Self.hexID(state.nextID)
            state.nextID += 1
            state.containers[id] = StoredContainer(id: id, config: config)
            emit(.create, state.containers[id]!)
            return id
        }
    }

    public func startContainer(_ id: String) async throws {
        try call("startContainer")
        try onContainer(id) { container, state in
            container.running = true
            container.logs += state.startupOutput[container.config.image] ?? []
            emit(.start, container)
        }
    }

    public func inspectContainer(_ id: String) async throws -> InspectedContainer {
        try call("inspectContainer")
        return try onContainer(id) { container, _ in InspectedContainer(container: Self.view(container)) }
    }

    public func listContainers(labels: [String], name: String?) async throws -> [ContainerSummary] {
        try call("listContainers")
        return state.withLock { state in
            state.containers.values.sorted { $0.id < $1.id }.filter { stored in
                if let name, stored.config.name != name { return false }
                return labels.allSatisfy { LabelFilter.matches($0, stored.config.labels) }
            }.map { stored in
                let view = Self.view(stored)
                return ContainerSummary(
                    id: view.id, name: view.name, image: view.image, state: view.state, labels: view.labels,
                    created: view.created)
            }
        }
    }

    public func renameContainer(_ id: String, to name: String) async throws {
        try call("renameContainer")
        try state.withLock { state in
            guard let key = Self.resolve(id, in: state) else { throw EngineFailure.notFound("No such container: \(id)") }
            if state.containers.values.contains(where: { $0.config.name == name && $0.id != key }) {
                throw EngineFailure.conflict("container name \"\(name)\" is already in use")
            }
            state.containers[key]?.config.name = name
        }
    }

    public func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        try call("stopContainer")
        try onContainer(id) { container, _ in
            if container.running {
                container.running = false
                container.exitCode = 143
                emit(.die, container, exitCode: 143)
            }
        }
    }

    public func killContainer(_ id: String, signal: String) async throws {
        try call("killContainer")
        try onContainer(id) { container, _ in
            guard container.running else { throw EngineFailure.conflict("container \(container.id) is not running") }
            container.running = false
            container.exitCode = 137
            emit(.die, container, exitCode: 137)
        }
    }

    public func removeContainer(_ id: String, force: Bool) async throws {
        try call("removeContainer")
        try state.withLock { state in
            guard let key = Self.resolve(id, in: state) else { throw EngineFailure.notFound("No such container: \(id)") }
            if state.containers[key]!.running && !force {
                throw EngineFailure.conflict("container \(key) is running")
            }
            if state.containers[key]!.running { emit(.die, state.containers[key]!, exitCode: 137) }
            emit(.destroy, state.containers[key]!)
            state.containers[key] = nil
        }
    }

    /// Polls: tests exit containers from another task.
    public func waitContainer(_ id: String, until condition: ContainerWaitCondition) async throws -> Int {
        try call("waitContainer")
        let wasRunning = try onContainer(id) { container, _ in container.running }
        while true {
            let now = state.withLock { state in Self.resolve(id, in: state).map { state.containers[$0]! } }
            switch condition {
            case .removed:
                if now == nil { return 0 }
            case .notRunning, .nextExit:
                guard let now else { throw EngineFailure.notFound("No such container: \(id)") }
                if !now.running, condition == .notRunning || wasRunning { return now.exitCode ?? 0 }
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    public func commitContainer(_ id: String, repository: String, tag: String, pause: Bool, changes: [String]) async throws
        -> String
    {
        try call("commitContainer")
        if let refused = changes.first(where: { $0.contains(Self.refusedChange) }) {
            throw EngineFailure.rejected("unknown change \(refused)")
        }
        let container = try onContainer(id) { container, _ in container }
        return state.withLock { state in
            let imageID = "sha256:" + Self.hexID(state.nextID)
            state.nextID += 1
            var labels = container.config.labels
            for change in changes where change.hasPrefix("LABEL ") {
                for pair in change.dropFirst(6).split(separator: " ") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    labels[String(parts[0])] = parts.count > 1 ? String(parts[1]).replacingQuotes : ""
                }
            }
            state.images["\(repository):\(tag)"] = ImageInfo(
                id: imageID, references: ["\(repository):\(tag)"], labels: labels, created: "2025-01-01T00:00:00Z", size: 1)
            return imageID
        }
    }

    public func containerLogs(_ id: String, _ options: LogOptions) async throws -> AsyncThrowingStream<LogLine, any Error> {
        try call("containerLogs")
        let key = try onContainer(id) { container, _ in container.id }
        let cursor = LogCursor()
        return AsyncThrowingStream { [self] in
            while true {
                let (lines, running) = try state.withLock { state in
                    guard state.reachable else { throw EngineFailure.unavailable("the in-memory engine is down") }
                    guard let container = state.containers[key] else { return ([LogLine](), false) }
                    return (container.logs, container.running)
                }
                if let line = cursor.next(in: lines, tail: options.tail) { return line }
                guard options.follow, running else { return nil }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    // MARK: Exec

    public func createExec(in container: String, _ options: ExecOptions) async throws -> String {
        try call("createExec")
        let containerID = try onContainer(container) { stored, _ in
            guard stored.running else { throw EngineFailure.conflict("container \(stored.id) is not running") }
            return stored.id
        }
        let script = Self.script(for: options)
        return state.withLock { state in
            let id = "exec" + Self.hexID(state.nextID)
            state.nextID += 1
            state.execs[id] = StoredExec(containerID: containerID, script: script)
            return id
        }
    }

    public func startExec(_ id: String, stdin: AsyncThrowingStream<[UInt8], any Error>?) async throws -> ExecAttachment {
        try call("startExec")
        var script = try state.withLock { state in
            guard state.execs[id] != nil else { throw EngineFailure.notFound("No such exec instance: \(id)") }
            state.execs[id]!.running = true
            return state.execs[id]!.script
        }
        if script.echoesStdin, let stdin {
            for try await chunk in stdin { script.output.append(OutputChunk(.stdout, chunk)) }
        }
        let closed = ClosedFlag()
        let chunks = Pending(script.output)
        let exitCode = script.exitCode
        let hangs = script.hangs
        let output = AsyncThrowingStream<OutputChunk, any Error> { [self] in
            if let chunk = chunks.next() { return chunk }
            if hangs {
                while !closed.isSet { try await Task.sleep(for: .milliseconds(2)) }
                throw EngineFailure.unavailable("the exec connection was closed")
            }
            state.withLock { state in
                state.execs[id]?.running = false
                state.execs[id]?.exitCode = exitCode
            }
            return nil
        }
        return ExecAttachment(output: output, close: { closed.set() })
    }

    public func inspectExec(_ id: String) async throws -> ExecState {
        try call("inspectExec")
        return try state.withLock { state in
            guard let exec = state.execs[id] else { throw EngineFailure.notFound("No such exec instance: \(id)") }
            return ExecState(running: exec.running, exitCode: exec.exitCode, containerID: exec.containerID)
        }
    }

    // Terminals need a real engine (the integration suites); in memory they are refused.

    public func startInteractiveExec(_ id: String, tty: Bool) async throws -> ProcessConnection {
        throw EngineFailure.rejected("the in-memory engine has no terminals")
    }

    public func resizeExec(_ id: String, _ size: TerminalSize) async throws {
        throw EngineFailure.rejected("the in-memory engine has no terminals")
    }

    public func attachContainer(_ id: String, tty: Bool) async throws -> ProcessConnection {
        throw EngineFailure.rejected("the in-memory engine has no terminals")
    }

    public func resizeContainer(_ id: String, _ size: TerminalSize) async throws {
        throw EngineFailure.rejected("the in-memory engine has no terminals")
    }

    /// `echo` prints its arguments, `cat` its stdin, `true`/`false` exit 0/1, `sleep` hangs;
    /// `sh -c "exit N"` exits N; anything else is not found (127).
    static func script(for options: ExecOptions) -> ExecScript {
        let arguments = Array(options.command.dropFirst())
        switch options.command.first {
        case "echo": return ExecScript(output: [OutputChunk(.stdout, Array((arguments.joined(separator: " ") + "\n").utf8))])
        case "cat": return ExecScript(echoesStdin: true)
        case "true": return ExecScript()
        case "false": return ExecScript(exitCode: 1)
        case "sleep": return ExecScript(hangs: true)
        case "sh" where arguments.count == 2 && arguments[1].hasPrefix("exit "):
            return ExecScript(exitCode: Int(arguments[1].dropFirst(5)) ?? 2)
        default:
            return ExecScript(
                output: [OutputChunk(.stderr, Array("\(options.command.first ?? ""): not found\n".utf8))], exitCode: 127)
        }
    }

    // MARK: Images

    public func listImages() async throws -> [ImageInfo] {
        try call("listImages")
        return state.withLock { state in
            var seen: Set<String> = []
            return state.images.values.sorted { $0.id < $1.id }.filter { seen.insert($0.id).inserted }
        }
    }

    public func inspectImage(_ reference: String) async throws -> ImageInfo {
        try call("inspectImage")
        return try state.withLock { state in
            guard let image = Self.image(reference, in: state) else { throw EngineFailure.notFound("No such image: \(reference)") }
            return image
        }
    }

    public func tagImage(_ reference: String, repository: String, tag: String) async throws {
        try call("tagImage")
        try state.withLock { state in
            guard var image = Self.image(reference, in: state) else { throw EngineFailure.notFound("No such image: \(reference)") }
            image.references.append("\(repository):\(tag)")
            for existing in image.references { state.images[existing] = image }
        }
    }

    public func removeImage(_ reference: String, force: Bool) async throws {
        try call("removeImage")
        try state.withLock { state in
            guard state.images[reference] != nil else { throw EngineFailure.notFound("No such image: \(reference)") }
            if !force, state.containers.values.contains(where: { $0.config.image == reference }) {
                throw EngineFailure.conflict("image \(reference) is being used by a container")
            }
            state.images[reference] = nil
        }
    }

    /// Reads the whole context, then reports the scripted progress (by default one line and
    /// a new image tagged with the request's tags).
    public func buildImage(_ request: ImageBuildRequest, context: AsyncThrowingStream<[UInt8], any Error>) async throws
        -> AsyncThrowingStream<BuildProgress, any Error>
    {
        try call("buildImage")
        for try await _ in context {}
        let progress: [BuildProgress] = state.withLock { state in
            if let script = state.buildScript { return script }
            let imageID = "sha256:" + Self.hexID(state.nextID)
            state.nextID += 1
            for tag in request.tags {
                state.images[tag] = ImageInfo(
                    id: imageID, references: request.tags, labels: request.labels, created: "2025-01-01T00:00:00Z", size: 1)
            }
            return [.line("Step 1/1 : FROM localhost/busybox:test"), .built(imageID: imageID)]
        }
        return Self.stream(progress)
    }

    /// A reference the engine knows pulls; any other is unknown to the registry.
    public func pullImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws -> AsyncThrowingStream<TransferProgress, any Error> {
        try call("pullImage")
        let known = state.withLock { Self.image("\(repository):\(tag)", in: $0) != nil }
        guard known else { return Self.stream([.status("Pulling", id: nil, current: nil, total: nil), .failed("manifest unknown")]) }
        return Self.stream([.status("Pulled", id: tag, current: 1, total: 1), .digest("sha256:" + String(repeating: "a", count: 64))])
    }

    /// No registry answers.
    public func pushImage(repository: String, tag: String, credentials: RegistryCredentials?) async throws -> AsyncThrowingStream<TransferProgress, any Error> {
        try call("pushImage")
        return Self.stream([.failed("dial tcp: connection refused")])
    }

    // MARK: Helpers

    /// Counts the call and fails it while the engine is down.
    private func call(_ name: String) throws {
        let reachable = state.withLock { state in
            state.calls.append(name)
            return state.reachable
        }
        guard reachable else { throw EngineFailure.unavailable("the in-memory engine is down") }
    }

    private func onContainer<T>(_ id: String, _ body: (inout StoredContainer, State) throws -> T) throws -> T {
        try state.withLock { state in
            guard let key = Self.resolve(id, in: state) else { throw EngineFailure.notFound("No such container: \(id)") }
            var container = state.containers[key]!
            defer { state.containers[key] = container }
            return try body(&container, state)
        }
    }

    private static func resolve(_ id: String, in state: State) -> String? {
        if state.containers[id] != nil { return id }
        return state.containers.values.first { $0.config.name == id }?.id
            ?? state.containers.keys.filter { $0.hasPrefix(id) }.first
    }

    private static func image(_ reference: String, in state: State) -> ImageInfo? {
        state.images[reference] ?? state.images.values.first { $0.id == reference }
    }

    private static func view(_ stored: StoredContainer) -> Container {
        Container(
            id: stored.id, name: stored.config.name ?? "", image: stored.config.image,
            state: ContainerState(
                status: stored.running ? "running" : stored.exitCode == nil ? "created" : "exited", running: stored.running,
                exitCode: stored.running ? nil : stored.exitCode),
            labels: stored.config.labels, ports: [], ipAddress: nil, created: "2025-01-01T00:00:00Z")
    }

    private static func hexID(_ number: Int) -> String {
        let hex = String(number, radix: 16)
        return String(repeating: "0", count: 64 - hex.count) + hex
    }

    private static func stream<T: Sendable>(_ elements: [T]) -> AsyncThrowingStream<T, any Error> {
        let pending = Pending(elements)
        return AsyncThrowingStream { pending.next() }
    }
}

/// What a stream still has to yield. Unchecked: a stream's producer is called one call at a time.
private final class Pending<Element>: @unchecked Sendable {
    private var elements: ArraySlice<Element>
    init(_ elements: [Element]) { self.elements = elements[...] }
    func next() -> Element? { elements.popFirst() }
}

/// How far a log reader got. Unchecked: a stream's producer is called one call at a time.
private final class LogCursor: @unchecked Sendable {
    private var sent: Int?

    /// The next line to send; `tail` applies to the lines there are at the first call.
    func next(in lines: [LogLine], tail: Int?) -> LogLine? {
        let position = sent ?? tail.map { max(0, lines.count - $0) } ?? 0
        guard position < lines.count else {
            sent = position
            return nil
        }
        sent = position + 1
        return lines[position]
    }
}

private final class ClosedFlag: Sendable {
    private let closed = Atomic(false)
    var isSet: Bool { closed.load(ordering: .acquiring) }
    func set() { closed.store(true, ordering: .releasing) }
}

extension String {
    fileprivate var replacingQuotes: String { filter { $0 != "\"" } }
}
