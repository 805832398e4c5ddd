import EngineDriver
import Foundation
import Synchronization

/// What `POST /containers/{id}/wait` waits for.
public enum ContainerWaitCondition: String, Sendable {
    /// Returns at once when the container is not running.
    case notRunning = "not-running"
    case nextExit = "next-exit"
    case removed
}

extension Runtime {
    // MARK: - Run

    /// Validates, resolves the image per the pull policy, creates, starts and (optionally) waits
    /// for readiness. Whatever fails after the create removes the container again, except a
    /// readiness wait that times out or sees the container exit: that container is left for
    /// the client to inspect (or removed on timeout with `auto_remove`).
    public func runContainer(_ spec: RunSpec) async throws(OcimanError) -> Container {
        do {
            try Validation.runSpec(spec)
        } catch {
            throw OcimanError(error)
        }
        // The owning session must be live now; the reaper removes the container once it is not.
        if let session = spec.session { try sessions.requireActive(session) }
        let reference = try Self.parsedReference(spec.image, field: "image")
        let config = Self.createConfig(for: spec, now: Date())
        let id = try await createAndStart(spec, reference: reference, config: config)

        do {
            if let wait = spec.wait {
                try await awaitReadiness(id, wait, autoRemove: spec.autoRemove)
            }
        } catch {
            switch error {
            // A readiness failure names the container so the client can look at it; anything
            // else (an engine call that timed out included) leaves nothing behind.
            case .timedOut(_, .some, _), .exitedBeforeReady: break
            default: await removeQuietly(id)
            }
            throw error
        }
        do {
            return try await inspect(id)
        } catch .notFound where spec.autoRemove {
            // It already exited and the engine removed it; answer with what the request made.
            return Container(
                id: id, name: spec.name ?? "", image: spec.image,
                state: ContainerState(status: "removed", running: false), labels: config.labels, ports: [],
                ipAddress: nil, created: config.labels[ManagedLabels.created] ?? "")
        }
    }

    /// Creates and starts the container; a container that fails to start is removed. A host port
    /// the engine picks can be taken by another process between the engine's choice and its bind
    /// (seen on Podman, about one run in 150: "address already in use"): that is not the client's
    /// doing, so the run is tried again with a new container, and never answered 400.
    private func createAndStart(
        _ spec: RunSpec, reference: ImageReference, config: ContainerCreateConfig
    ) async throws(OcimanError) -> String {
        var id = try await createResolvingImage(spec, reference: reference, config: config)
        var attempt = 1
        while true {
            do {
                try await start(id)
                return id
            } catch {
                await removeQuietly(id)
                guard Self.isEnginePickedPortRace(error, spec) else { throw error }
                guard attempt < Self.hostPortAttempts else {
                    throw .unavailable("the engine could not bind a free host port in \(attempt) attempts: \(error)")
                }
                attempt += 1
                logger.info(
                    "engine-picked host port was taken before the engine bound it; running again",
                    metadata: ["attempt": "\(attempt)", "error": "\(error)"])
            }
            id = try await create(spec, config)
        }
    }

    static let hostPortAttempts = 4

    /// The start failed because a host address was in use, and no host port the client chose
    /// is the one named (a taken fixed port is the client's 400).
    static func isEnginePickedPortRace(_ error: OcimanError, _ spec: RunSpec) -> Bool {
        guard case .invalid(field: nil, let message) = error, message.contains("address already in use"),
            spec.publish.contains(where: { ($0.hostPort ?? 0) == 0 })
        else { return false }
        let fixedPorts = spec.publish.compactMap(\.hostPort).filter { $0 != 0 }
        return !fixedPorts.contains { port in
            message.ranges(of: ":\(port)").contains { range in
                range.upperBound == message.endIndex || !message[range.upperBound].isNumber
            }
        }
    }

    /// `missing` tries the create first and pulls only when the engine reports the image absent,
    /// so a present image costs no extra call.
    private func createResolvingImage(
        _ spec: RunSpec, reference: ImageReference, config: ContainerCreateConfig
    ) async throws(OcimanError) -> String {
        if spec.pullPolicy == .always { try await pull(reference) }
        do {
            return try await create(spec, config)
        } catch .notFound(let message) {
            guard spec.pullPolicy == .missing else {
                throw .notFound(
                    "image \(spec.image) is not present (pull_policy \(spec.pullPolicy.rawValue)): \(message)")
            }
        }
        try await pull(reference)
        return try await create(spec, config)
    }

    private func create(_ spec: RunSpec, _ config: ContainerCreateConfig) async throws(OcimanError) -> String {
        do {
            return try await engine.createContainer(name: spec.name, config)
        } catch let error as EngineError {
            if case .engine = error, let name = spec.name,
                (try? await engine.inspectContainer(name, libpod: kind == .podman)) != nil
            {
                // Podman answers a name in use with 500; Docker with 409.
                throw .conflict("container name \"\(name)\" is already in use")
            }
            if case .conflict = error, let name = spec.name {
                throw .conflict("container name \"\(name)\" is already in use: \(error.message)")
            }
            throw OcimanError(error, context: "creating a container from \(spec.image)")
        } catch {
            throw OcimanError.wrap(error)
        }
    }

    /// A start fails for what the request asked (a missing executable, a bad user or workdir,
    /// a host port in use); Docker answers most of these 400, Podman 500, so both become 400.
    private func start(_ id: String) async throws(OcimanError) {
        do {
            try await engine.startContainer(id)
        } catch let error as EngineError {
            switch error {
            case .unavailable, .timeout, .notFound, .conflict, .protocolViolation:
                throw OcimanError(error, context: "starting container \(id)")
            case .badRequest, .engine, .notModified:
                throw .invalid(field: nil, message: "the container could not start: \(error.message)")
            }
        } catch {
            throw .wrap(error)
        }
    }

    /// Pulls and reads the progress stream to its end; the engines report most failures inside it.
    private func pull(_ reference: ImageReference) async throws(OcimanError) {
        try await OcimanError.wrap("pulling \(reference)") {
            let stream = try await engine.pullImage(
                reference.repository, tag: reference.digest ?? reference.tag ?? "latest", timeout: .seconds(600))
            var splitter = JSONStreamSplitter()
            var failure: String?
            for try await chunk in stream.body {
                for value in try splitter.feed(chunk.readableBytesView) {
                    if let message = EngineProgressMessage.decode(value)?.failureMessage { failure = message }
                }
            }
            try splitter.finish()
            if let failure { throw OcimanError.engineFailure("pulling \(reference): \(failure)") }
        }
    }

    /// Removes a container after a failed run, outside the request's task so that a client that
    /// went away cannot cancel the cleanup.
    func removeQuietly(_ id: String) async {
        let engine = self.engine
        await Task { try? await engine.removeContainer(id, force: true) }.value
    }

    static func parsedReference(_ text: String, field: String) throws(OcimanError) -> ImageReference {
        do {
            return try Validation.imageReference(text, field: field)
        } catch {
            throw OcimanError(error)
        }
    }

    /// The engine's create body: the request plus ociman's own labels.
    static func createConfig(for spec: RunSpec, now: Date) -> ContainerCreateConfig {
        var labels = spec.labels
        labels[ManagedLabels.managed] = "true"
        labels[ManagedLabels.created] = now.formatted(.iso8601)
        if let ttl = spec.ttlSeconds {
            labels[ManagedLabels.expiresAt] = String(Int64(now.timeIntervalSince1970.rounded(.down)) + Int64(ttl))
        }
        if let session = spec.session { labels[ManagedLabels.session] = session }

        var bindings: [String: [PortBinding]] = [:]
        for publish in spec.publish {
            let key = "\(publish.containerPort)/\(publish.protocol.rawValue)"
            let hostPort = publish.hostPort.flatMap { $0 == 0 ? nil : String($0) } ?? ""
            bindings[key, default: []].append(PortBinding(hostIP: publish.hostIP ?? "", hostPort: hostPort))
        }
        let mounts = spec.mounts.map { mount in
            MountConfig(
                type: MountConfig.Kind(rawValue: mount.kind.rawValue)!, source: mount.source, target: mount.target,
                readOnly: mount.readOnly)
        }
        return ContainerCreateConfig(
            image: spec.image,
            cmd: spec.command.flatMap { $0.isEmpty ? nil : $0 },
            entrypoint: spec.entrypoint,
            env: spec.env.isEmpty ? nil : spec.env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            labels: labels,
            workingDir: spec.workdir,
            user: spec.user,
            exposedPorts: bindings.isEmpty ? nil : bindings.mapValues { _ in .init() },
            hostConfig: HostConfig(
                portBindings: bindings.isEmpty ? nil : bindings, mounts: mounts.isEmpty ? nil : mounts,
                autoRemove: spec.autoRemove)
        )
    }

    // MARK: - Inspect and list

    /// By full id, unique id prefix or name.
    public func inspect(_ id: String) async throws(OcimanError) -> Container {
        let inspect = try await OcimanError.wrap {
            do {
                return try await engine.inspectContainer(id, libpod: kind == .podman)
            } catch EngineError.notFound {
                throw OcimanError.notFound("no such container: \(id)")
            }
        }
        return Self.container(from: inspect)
    }

    /// All containers, stopped ones too, that carry every label filter (`key` or `key=value`)
    /// and, when given, exactly this name.
    public func listContainers(labels: [String], name: String?) async throws(OcimanError) -> [ContainerSummary] {
        do {
            for filter in labels { _ = try Validation.labelFilter(filter) }
            if let name { try Validation.containerName(name) }
        } catch {
            throw OcimanError(error)
        }
        // The engines match `name` as a regular expression anywhere in the name: anchor it
        // (names allow only `.` of the metacharacters) and keep only exact matches.
        let nameFilter = name.map { "^/?" + $0.replacingOccurrences(of: ".", with: "\\.") + "$" }
        let entries = try await OcimanError.wrap {
            try await engine.listContainers(labels: labels, nameFilter: nameFilter, libpod: kind == .podman)
        }
        return entries.compactMap { entry in
            let summary = Self.summary(from: entry)
            if let name, summary.name != name { return nil }
            return summary
        }
    }

    static func container(from inspect: ContainerInspect) -> Container {
        var ports: [PublishedPort] = []
        for (key, bindings) in inspect.networkSettings?.ports ?? [:] {
            let parts = key.split(separator: "/")
            guard let containerPort = parts.first.flatMap({ Int($0) }) else { continue }
            let proto = PortProtocol(rawValue: parts.count > 1 ? String(parts[1]) : "tcp") ?? .tcp
            for binding in bindings ?? [] {
                guard let hostPort = binding.hostPort.flatMap({ Int($0) }), hostPort > 0 else { continue }
                let hostIP = binding.hostIP.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
                ports.append(PublishedPort(containerPort: containerPort, protocol: proto, hostIP: hostIP, hostPort: hostPort))
            }
        }
        ports.sort { ($0.containerPort, $0.protocol.rawValue, $0.hostIP) < ($1.containerPort, $1.protocol.rawValue, $1.hostIP) }
        let settings = inspect.networkSettings
        let ipAddress = [settings?.ipAddress].compactMap { $0 }.first { !$0.isEmpty }
            ?? settings?.networks?.sorted { $0.key < $1.key }.compactMap(\.value.ipAddress).first { !$0.isEmpty }
        let state = inspect.state
        let startedAt = engineTime(state.startedAt)
        let finishedAt = engineTime(state.finishedAt)
        return Container(
            id: inspect.id,
            name: strippedName(inspect.name),
            image: inspect.config?.image ?? "",
            state: ContainerState(
                status: state.status,
                running: state.running,
                // An exit code means something only once the container has exited.
                exitCode: finishedAt != nil && !state.running ? state.exitCode : nil,
                startedAt: startedAt,
                finishedAt: finishedAt),
            labels: inspect.config?.labels ?? [:],
            ports: ports,
            ipAddress: ipAddress,
            created: inspect.created
        )
    }

    static func summary(from entry: ContainerListEntry) -> ContainerSummary {
        let created: String
        switch entry.created {
        case .unixSeconds(let seconds): created = Date(timeIntervalSince1970: Double(seconds)).formatted(.iso8601)
        case .text(let text): created = text
        }
        return ContainerSummary(
            id: entry.id,
            name: entry.names.first.map(strippedName) ?? "",
            image: entry.image,
            state: ContainerState(
                status: entry.state, running: entry.state == "running",
                exitCode: entry.exited == true ? entry.exitCode : nil),
            labels: entry.labels,
            created: created)
    }

    /// Docker prefixes names with `/`.
    static func strippedName(_ name: String) -> String {
        name.hasPrefix("/") ? String(name.dropFirst()) : name
    }

    /// The engines report "never" as Go's zero time.
    static func engineTime(_ text: String?) -> String? {
        guard let text, !text.isEmpty, !text.hasPrefix("0001-01-01") else { return nil }
        return text
    }

    // MARK: - Stop, kill, wait, remove

    public func stop(_ id: String, timeoutSeconds: Int) async throws(OcimanError) {
        try OcimanError.checkBounds(timeoutSeconds, IntegerBounds.stopTimeoutSeconds, field: "timeout")
        try await OcimanError.wrap {
            do {
                try await engine.stopContainer(id, timeoutSeconds: timeoutSeconds)
            } catch EngineError.notFound {
                throw OcimanError.notFound("no such container: \(id)")
            }
        }
    }

    /// 409 when the container is not running, on both engines (Podman answers 500).
    public func kill(_ id: String, signal: String) async throws(OcimanError) {
        do {
            try Validation.signal(signal)
        } catch {
            throw OcimanError(error)
        }
        do {
            try await engine.killContainer(id, signal: signal)
        } catch let error as EngineError {
            switch error {
            case .notFound: throw .notFound("no such container: \(id)")
            case .conflict: throw .conflict("container \(id) is not running")
            case .badRequest(let message): throw .invalid(field: "signal", message: message)
            default:
                if let state = try? await engine.inspectContainer(id, libpod: kind == .podman), !state.state.running {
                    throw .conflict("container \(id) is not running")
                }
                throw OcimanError(error, context: "killing container \(id)")
            }
        } catch {
            throw OcimanError.wrap(error)
        }
    }

    /// 409 when it runs and `force` is not set, on both engines (Podman answers 500).
    public func remove(_ id: String, force: Bool) async throws(OcimanError) {
        do {
            try await engine.removeContainer(id, force: force)
        } catch let error as EngineError {
            switch error {
            case .notFound: throw .notFound("no such container: \(id)")
            case .conflict: throw .conflict("container \(id) is running; stop it first or remove with force")
            default:
                if !force, let state = try? await engine.inspectContainer(id, libpod: kind == .podman), state.state.running {
                    throw .conflict("container \(id) is running; stop it first or remove with force")
                }
                throw OcimanError(error, context: "removing container \(id)")
            }
        } catch {
            throw OcimanError.wrap(error)
        }
    }

    /// Waits for the condition and answers the exit code; 504 after `timeoutSeconds`.
    public func wait(_ id: String, condition: ContainerWaitCondition, timeoutSeconds: Int?) async throws(OcimanError) -> Int {
        try OcimanError.checkBounds(timeoutSeconds, IntegerBounds.waitTimeoutSeconds, field: "timeout")
        let engine = self.engine
        let podman = kind == .podman
        let code = try await OcimanError.wrap {
            try await Self.withDeadline(timeoutSeconds.map { .seconds($0) }) {
                do {
                    return try await Self.engineWait(engine, id, condition, podman: podman)
                } catch EngineError.notFound {
                    throw OcimanError.notFound("no such container: \(id)")
                }
            }
        }
        guard let code else {
            throw .timedOut("container \(id) did not reach \(condition.rawValue) within \(timeoutSeconds ?? 0) s", containerID: id)
        }
        return code
    }

    /// Podman's compat wait polls every 250 ms, so `not-running` uses its own wait (SPEC §9).
    /// Its own wait has no `next-exit` (an exited container answers at once) nor `removed`
    /// (Podman 4.3 rejects it): those stay on the compat endpoint, which on Podman reports 0
    /// for `removed`, so the exit code of an already exited container is read first.
    static func engineWait(
        _ engine: EngineClient, _ id: String, _ condition: ContainerWaitCondition, podman: Bool
    ) async throws -> Int {
        switch (condition, podman) {
        case (.notRunning, true):
            return try await engine.waitContainerStoppedLibpod(id)
        case (.removed, true):
            let before = try await engine.inspectContainer(id, libpod: true)
            let code = try await engine.waitContainer(id, condition: .removed)
            return before.state.running || engineTime(before.state.finishedAt) == nil ? code : before.state.exitCode ?? code
        default:
            return try await engine.waitContainer(id, condition: WaitCondition(rawValue: condition.rawValue)!)
        }
    }

    /// Runs `operation`; nil when `timeout` passes first (the operation is then cancelled).
    static func withDeadline<T: Sendable>(
        _ timeout: Duration?, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        guard let timeout else { return try await operation() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    // MARK: - Commit

    /// Snapshots the container. The engines copy the container's config, labels included, into
    /// the image; the reaper's labels are blanked there so that containers run from the image
    /// do not inherit the original's expiry or session.
    public func commit(_ id: String, reference: String, pause: Bool, changes: [String]) async throws(OcimanError) -> CommitResult {
        let parsed = try Self.parsedReference(reference, field: "reference")
        guard parsed.digest == nil else {
            throw .invalid(field: "reference", message: "a commit reference names a tag, not a digest: \"\(reference)\"")
        }
        if let index = changes.firstIndex(where: { !Self.isCommitChange($0) }) {
            throw .invalid(
                field: "changes[\(index)]",
                message: "a change must be a Dockerfile instruction with an argument: one of \(Self.commitInstructions.sorted().joined(separator: ", "))")
        }
        let tag = parsed.tag ?? "latest"
        let engine = self.engine
        let imageID = try await OcimanError.wrap {
            let container: ContainerInspect
            do {
                container = try await engine.inspectContainer(id, libpod: kind == .podman)
            } catch EngineError.notFound {
                throw OcimanError.notFound("no such container: \(id)")
            }
            let inherited = [ManagedLabels.expiresAt, ManagedLabels.session].filter {
                container.config?.labels?[$0] != nil
            }
            let blanked = inherited.isEmpty ? [] : ["LABEL " + inherited.map { "\($0)=\"\"" }.joined(separator: " ")]
            do {
                return try await engine.commitContainer(
                    container.id, repository: parsed.repository, tag: tag, pause: pause, changes: changes + blanked)
            } catch EngineError.badRequest(let message) {
                throw OcimanError.invalid(field: "changes", message: message)
            }
        }
        let normalized = imageID.hasPrefix("sha256:") ? imageID : "sha256:" + imageID
        return CommitResult(imageID: normalized, reference: "\(parsed.repository):\(tag)")
    }

    /// The instructions both engines apply on commit (Docker refuses others with 400, Podman
    /// with 500, which would reach the client as 502).
    static let commitInstructions: Set<String> = ["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"]

    /// `INSTRUCTION argument`, the instruction in any case, without NUL bytes.
    static func isCommitChange(_ change: String) -> Bool {
        guard !change.utf8.contains(0) else { return false }
        let parts = change.trimmingCharacters(in: .whitespaces).split(
            maxSplits: 1, omittingEmptySubsequences: true, whereSeparator: { $0 == " " || $0 == "\t" })
        return parts.count == 2 && commitInstructions.contains(parts[0].uppercased())
    }
}

extension OcimanError {
    /// `wrap` for an error already caught.
    static func wrap(_ error: any Error) -> OcimanError {
        switch error {
        case let error as OcimanError: error
        case let error as EngineError: OcimanError(error)
        case let error as ValidationError: OcimanError(error)
        case is CancellationError: .unavailable("the request was cancelled")
        default: .engineFailure("\(error)")
        }
    }
}
