import Logging
import Synchronization

/// Removes (forcibly, with anonymous volumes) managed containers whose time-to-live or session
/// lease has ended. Everything it decides from lives in container labels and the session store,
/// so containers created before a restart of ocimand are reaped after it.
///
/// Only containers labelled `ociman.managed=true` are ever touched. A container whose session id
/// was not issued by this session store (another state directory, or a lost state file) is left
/// alone: see `SessionStore`.
public final class Reaper: Sendable {
    public enum Reason: String, Sendable, Equatable {
        case ttl = "time-to-live passed"
        case session = "session ended"
    }

    private let runtime: Runtime
    private let interval: Duration
    private let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// Set while the engine fails, so an outage logs one warning, not one per tick.
    private let failing = Mutex(false)
    /// Foreign session ids already reported, so each is logged once (bounded).
    private let reportedForeign = Mutex<Set<String>>([])

    public init(runtime: Runtime, interval: Duration = .seconds(1), logger: Logger) {
        self.runtime = runtime
        self.interval = interval
        self.logger = logger
    }

    /// Starts reaping now and then every `interval` until `stop()`.
    public func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task { [self] in
                while !Task.isCancelled {
                    await tick()
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    /// Cancels the loop and waits for an in-progress pass to end.
    public func stop() async {
        let running = task.withLock { task in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
    }

    private func tick() async {
        do {
            try await reapOnce()
            if failing.withLock({ was in defer { was = false }; return was }) {
                logger.info("reaper: the engine answers again")
            }
        } catch {
            if Task.isCancelled { return }
            let first = failing.withLock { was in defer { was = true }; return !was }
            logger.log(
                level: first ? .warning : .debug, "reaper: cannot list containers, retrying",
                metadata: ["error": "\(error)"])
        }
    }

    /// One pass: lists managed containers, removes those that are due and answers their ids.
    /// Throws only when the engine cannot list; a failed removal is logged and retried next pass.
    @discardableResult
    public func reapOnce() async throws(OcimanError) -> [String] {
        // List first, then read the leases: a container in the list existed before the read, so
        // its session was already in the store unless it has since ended or been deleted.
        let containers = try await OcimanError.wrap("listing managed containers") {
            try await runtime.engine.listContainers(labels: ["\(ManagedLabels.managed)=true"], name: nil)
        }
        let sessions: SessionStore.Snapshot?
        do {
            sessions = try runtime.sessions.snapshot()
        } catch {
            // Unreadable leases: judge only time-to-live this pass.
            logger.warning("reaper: session state unavailable, sessions not judged", metadata: ["error": "\(error)"])
            sessions = nil
        }
        let now = runtime.sessions.now
        var due: [(id: String, reason: Reason)] = []
        for container in containers where !runtime.pools.isBeingRemoved(container.id) {
            // A claimed pool member carries its claim's session and time-to-live in the pool state.
            let labels = runtime.pools.labels(of: container.id, engineLabels: container.labels)
            if let reason = Self.reason(toRemove: labels, now: now, sessions: sessions) {
                due.append((container.id, reason))
            } else if let session = labels[ManagedLabels.session],
                sessions?.verdict(for: session, at: now) == .foreign
            {
                reportForeign(session, container: container.id)
            }
        }
        guard !due.isEmpty else { return [] }
        let reasons = Dictionary(due.map { ($0.id, $0.reason) }, uniquingKeysWith: { first, _ in first })
        let outcome = await runtime.removeContainers(due.map(\.id))
        for id in outcome.removed {
            OcimanMetrics.containerReaped()
            logger.info(
                "reaped container", metadata: ["container": "\(id)", "reason": "\(reasons[id]?.rawValue ?? "")"])
        }
        for (id, error) in outcome.failures {
            logger.warning("reaper: cannot remove container, retrying", metadata: ["container": "\(id)", "error": "\(error)"])
        }
        return outcome.removed
    }

    /// Why a container with these labels must go now, or nil. Unmanaged containers never go; an
    /// unparsable `ociman.expires-at` is not a reason (nothing ociman wrote).
    public static func reason(
        toRemove labels: [String: String],
        now: Double,
        sessions: SessionStore.Snapshot?
    ) -> Reason? {
        guard labels[ManagedLabels.managed] == "true" else { return nil }
        if let text = labels[ManagedLabels.expiresAt], let expiresAt = Double(text), expiresAt.isFinite, now >= expiresAt {
            return .ttl
        }
        if let session = labels[ManagedLabels.session], sessions?.verdict(for: session, at: now) == .ended {
            return .session
        }
        return nil
    }

    private func reportForeign(_ session: String, container: String) {
        let first = reportedForeign.withLock { reported in
            guard reported.count < 1024 else { return false }
            return reported.insert(session).inserted
        }
        guard first else { return }
        logger.notice(
            "reaper: leaving containers of a session this state directory did not issue",
            metadata: ["session": "\(session)", "container": "\(container)"])
    }
}

extension Runtime {
    /// `DELETE /sessions/{id}`: removes the session's managed containers, then forgets it, and
    /// answers how many containers were removed. When a removal fails the session is kept, so the
    /// client can retry; a container that joined meanwhile is reaped (its session is then unknown
    /// but issued here).
    public func deleteSession(_ id: String) async throws(OcimanError) -> Int {
        guard try sessions.isActive(id) else { throw SessionStore.unknown(id) }
        let containers = try await OcimanError.wrap("listing the containers of session \(id)") {
            try await engine.listContainers(
                labels: ["\(ManagedLabels.managed)=true", "\(ManagedLabels.session)=\(id)"], name: nil)
        }
        let outcome = await removeContainers(containers.map(\.id))
        if let (_, error) = outcome.failures.first { throw error }
        try sessions.remove(id)
        return outcome.removed.count
    }

    /// Force-removes containers, a few at a time; one already gone counts as neither.
    func removeContainers(_ ids: [String]) async -> (removed: [String], failures: [(String, OcimanError)]) {
        let parallelism = 8
        var removed: [String] = []
        var failures: [(String, OcimanError)] = []
        await withTaskGroup(of: (String, OcimanError?)?.self) { group in
            var pending = ids[...]
            func next() {
                guard let id = pending.popFirst() else { return }
                group.addTask { [engine] in
                    do {
                        try await engine.removeContainer(id, force: true)
                        return (id, nil)
                    } catch EngineFailure.notFound {
                        return nil  // auto-removed, or another ocimand reaped it first
                    } catch EngineFailure.conflict {
                        return nil  // a removal is already in progress
                    } catch let failure as EngineFailure {
                        return (id, OcimanError(failure))
                    } catch {
                        return (id, .unavailable("\(error)"))
                    }
                }
            }
            for _ in 0..<parallelism { next() }
            for await result in group {
                if let (id, error) = result {
                    if let error { failures.append((id, error)) } else { removed.append(id) }
                }
                next()
            }
        }
        return (removed, failures)
    }
}
