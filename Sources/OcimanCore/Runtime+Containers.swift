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
        try await runInspectedContainer(spec, ownLabels: [:]).container
    }

    /// `ownLabels` are ociman's own (a pool member's), set after the request's were validated.
    /// Answers the engine's inspect from right after the start.
    func runInspectedContainer(_ spec: RunSpec, ownLabels: [String: String]) async throws(OcimanError)
        -> InspectedContainer
    {
        do {
            try Validation.runSpec(spec)
        } catch {
            throw OcimanError(error)
        }
        // The owning session must be live now; the reaper removes the container once it is not.
        if let session = spec.session { try sessions.requireActive(session) }
        let reference = try Self.parsedReference(spec.image, field: "image")
        var config = Self.createConfig(for: spec, now: Date())
        config.labels.merge(ownLabels) { $1 }
        // Create and start run to their end even when the caller is cancelled (its client left, its
        // pool was deleted): the engine finishes a create whose caller gave up, and that container
        // would be nobody's. Cancellation is honoured once the id is known, by removing it.
        let started = await Task { [config] () async -> Result<String, OcimanError> in
            do throws(OcimanError) {
                return .success(try await self.createAndStart(spec, reference: reference, config: config))
            } catch {
                return .failure(error)
            }
        }.value
        let id = try started.get()
        if Task.isCancelled {
            await removeQuietly(id)
            throw OcimanError(converting: CancellationError(), context: "running a container")
        }

        // One inspect, right after the start, serves the TCP probe (its host port) and the answer:
        // nothing in it changes while the container runs, and a stop during the wait fails the
        // wait. Taken before the wait, it adds nothing to the time from ready to the answer.
        let inspected: InspectedContainer
        do {
            inspected = try await onContainer(id) { try await engine.inspectContainer(id) }
        } catch .notFound where spec.autoRemove {
            // It already exited and the engine removed it; answer with what the request made.
            return InspectedContainer(
                container: Container(
                    id: id, name: spec.name ?? "", image: spec.image,
                    state: ContainerState(status: "removed", running: false), labels: config.labels, ports: [],
                    ipAddress: nil, created: config.labels[ManagedLabels.created] ?? ""))
        } catch {
            await removeQuietly(id)
            throw error
        }
        do {
            if let wait = spec.wait {
                try await awaitReadiness(id, wait, inspected: inspected, autoRemove: spec.autoRemove)
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
        return inspected
    }

    /// Creates and starts the container; a container that fails to start is removed. A host port
    /// the engine picks can be taken by another process between the engine's choice and its bind
    /// (seen on Podman, about one run in 150: "address already in use"): that is not the client's
    /// doing, so the run is tried again with a new container, and never answered 400.
    private func createAndStart(
        _ spec: RunSpec, reference: ImageReference, config: ContainerConfig
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
        _ spec: RunSpec, reference: ImageReference, config: ContainerConfig
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

    /// The engine words a name in use as a conflict; everything else gets the image as context.
    private func create(_ spec: RunSpec, _ config: ContainerConfig) async throws(OcimanError) -> String {
        do {
            return try await engine.createContainer(config)
        } catch let failure as EngineFailure {
            if case .conflict = failure { throw OcimanError(failure) }
            throw OcimanError(failure, context: "creating a container from \(spec.image)")
        } catch {
            throw OcimanError(converting: error)
        }
    }

    /// A start fails for what the request asked (a missing executable, a bad user or workdir,
    /// a host port in use); Docker answers most of these 400, Podman 500, so both become 400.
    private func start(_ id: String) async throws(OcimanError) {
        do {
            try await engine.startContainer(id)
        } catch let failure as EngineFailure {
            switch failure {
            case .unavailable, .timedOut, .notFound, .conflict:
                throw OcimanError(failure, context: "starting container \(id)")
            case .rejected, .failed:
                throw .invalid(field: nil, message: "the container could not start: \(failure.message)")
            }
        } catch {
            throw OcimanError(converting: error)
        }
    }

    /// Pulls and reads the progress stream to its end; the engines report most failures inside it.
    private func pull(_ reference: ImageReference) async throws(OcimanError) {
        try await OcimanError.wrap("pulling \(reference)") {
            let progress = try await engine.pullImage(
                repository: reference.repository, tag: reference.digest ?? reference.tag ?? "latest", credentials: nil)
            var failure: String?
            for try await step in progress {
                if case .failed(let message) = step { failure = message }
            }
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

    /// What the engine creates: the request plus ociman's own labels.
    static func createConfig(for spec: RunSpec, now: Date) -> ContainerConfig {
        var labels = spec.labels
        labels[ManagedLabels.managed] = "true"
        labels[ManagedLabels.created] = now.formatted(.iso8601)
        if let ttl = spec.ttlSeconds {
            labels[ManagedLabels.expiresAt] = String(Int64(now.timeIntervalSince1970.rounded(.down)) + Int64(ttl))
        }
        if let session = spec.session { labels[ManagedLabels.session] = session }
        var config = ContainerConfig(
            name: spec.name,
            image: spec.image,
            command: spec.command.flatMap { $0.isEmpty ? nil : $0 },
            entrypoint: spec.entrypoint,
            environment: spec.env,
            labels: labels,
            workdir: spec.workdir,
            user: spec.user,
            publish: spec.publish,
            mounts: spec.mounts,
            autoRemove: spec.autoRemove
        )
        config.tty = spec.tty
        config.openStdin = spec.stdinOpen
        return config
    }

    // MARK: - Inspect and list

    /// By full id, unique id prefix or name.
    public func inspect(_ id: String) async throws(OcimanError) -> Container {
        var container = try await onContainer(id) { try await engine.inspectContainer(id) }.container
        container.labels = pools.labels(of: container.id, engineLabels: container.labels)
        return container
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
        var listed = try await OcimanError.wrap { try await engine.listContainers(labels: labels, name: name) }
        guard pools.anyClaimHasLabels else { return listed }
        // Claimed pool members carry their claimers' labels only here: the engine's filter cannot
        // see them, so every member is matched against it here, with the labels it shows.
        if !labels.isEmpty {
            let known = Set(listed.map(\.id))
            let members = try await OcimanError.wrap {
                try await engine.listContainers(labels: [ManagedLabels.pool], name: name)
            }
            listed += members.filter { !known.contains($0.id) }
        }
        return listed.compactMap { summary in
            var shown = summary
            shown.labels = pools.labels(of: summary.id, engineLabels: summary.labels)
            return labels.allSatisfy { LabelFilter.matches($0, shown.labels) } ? shown : nil
        }
    }

    /// Runs an engine call about container `id`: an unknown one is "no such container", every
    /// other failure keeps the engine's words.
    func onContainer<T>(_ id: String, context: String? = nil, _ call: () async throws -> T) async throws(OcimanError) -> T {
        do {
            return try await call()
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch {
            throw OcimanError(converting: error, context: context)
        }
    }

    // MARK: - Stop, kill, wait, remove

    public func stop(_ id: String, timeoutSeconds: Int) async throws(OcimanError) {
        try OcimanError.checkBounds(timeoutSeconds, IntegerBounds.stopTimeoutSeconds, field: "timeout")
        try await onContainer(id) { try await engine.stopContainer(id, timeoutSeconds: timeoutSeconds) }
    }

    /// 409 when the container is not running.
    public func kill(_ id: String, signal: String) async throws(OcimanError) {
        do {
            try Validation.signal(signal)
        } catch {
            throw OcimanError(error)
        }
        do {
            try await engine.killContainer(id, signal: signal)
        } catch EngineFailure.rejected(let message) {
            throw .invalid(field: "signal", message: message)
        } catch EngineFailure.conflict {
            throw .conflict("container \(id) is not running")
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch {
            throw OcimanError(converting: error, context: "killing container \(id)")
        }
    }

    /// 409 when it runs and `force` is not set.
    public func remove(_ id: String, force: Bool) async throws(OcimanError) {
        do {
            try await engine.removeContainer(id, force: force)
        } catch EngineFailure.conflict {
            throw .conflict("container \(id) is running; stop it first or remove with force")
        } catch EngineFailure.notFound {
            throw .notFound("no such container: \(id)")
        } catch {
            throw OcimanError(converting: error, context: "removing container \(id)")
        }
    }

    /// Waits for the condition and answers the exit code; 504 after `timeoutSeconds`.
    public func wait(_ id: String, condition: ContainerWaitCondition, timeoutSeconds: Int?) async throws(OcimanError) -> Int {
        try OcimanError.checkBounds(timeoutSeconds, IntegerBounds.waitTimeoutSeconds, field: "timeout")
        let engine = self.engine
        let code = try await onContainer(id) {
            try await Self.withDeadline(timeoutSeconds.map { .seconds($0) }) {
                try await engine.waitContainer(id, until: condition)
            }
        }
        guard let code else {
            throw .timedOut("container \(id) did not reach \(condition.rawValue) within \(timeoutSeconds ?? 0) s", containerID: id)
        }
        return code
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
        let container = try await inspect(id)
        let inherited = [ManagedLabels.expiresAt, ManagedLabels.session].filter { container.labels[$0] != nil }
        let blanked = inherited.isEmpty ? [] : ["LABEL " + inherited.map { "\($0)=\"\"" }.joined(separator: " ")]
        let imageID: String
        do {
            imageID = try await engine.commitContainer(
                container.id, repository: parsed.repository, tag: tag, pause: pause, changes: changes + blanked)
        } catch EngineFailure.rejected(let message) {
            throw .invalid(field: "changes", message: message)
        } catch {
            throw OcimanError(converting: error)
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
