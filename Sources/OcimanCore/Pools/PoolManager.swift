import CoreMetrics
import Foundation
import Logging
import Synchronization

/// Warm pools: keeps each pool's members booted and ready, hands each out once, and boots a
/// replacement in the background. Engine-neutral: members are run through the runtime like
/// `POST /containers`, and a member's death is learnt from the engine's events.
///
/// One actor, so a ready member is taken by exactly one claim. Engine calls run outside its
/// lock (the actor is free while they wait).
public actor PoolManager {
    private let runtime: Runtime
    private let store: PoolStore
    private let logger: Logger

    private struct Waiter {
        var id: UUID
        var continuation: CheckedContinuation<Member?, Never>
    }

    /// A member handed to a claim: its id and, when this process booted it, its boot's inspect
    /// and its main process's start time on this host (nil when this host cannot see it).
    private struct Member: Sendable {
        var id: String
        var inspected: InspectedContainer?
        var processStartTime: UInt64?

        init(id: String) {
            self.id = id
        }

        init(booted: InspectedContainer) {
            id = booted.container.id
            inspected = booted
            processStartTime = booted.processID > 0 ? HostProcessTree.startTime(of: Int32(clamping: booted.processID)) : nil
        }

        /// Whether the main process still runs, as this host's `/proc` tells; nil when it cannot.
        var isAlive: Bool? {
            guard let inspected, let processStartTime else { return nil }
            return HostProcessTree.startTime(of: Int32(clamping: inspected.processID)) == processStartTime
        }
    }

    private struct Live {
        var spec: PoolSpec
        var key: String
        var ready: [String]
        /// Ready members booted by this process, with what their boot learnt.
        var booted: [String: Member] = [:]
        var claimed: Int
        var booting: [UUID: Task<Void, Never>] = [:]
        var waiters: [Waiter] = []
        /// The last boot's duration: what `Retry-After` promises.
        var lastBoot: Duration = .seconds(1)
        /// Consecutive failed boots, the last one's error, and until when boots pause.
        var failures = 0
        var lastError: String?
        var pausedUntil: ContinuousClock.Instant?
    }

    private var pools: [String: Live] = [:]
    private var watcher: Task<Void, Never>?
    /// Released members waiting for removal (with their pool), and how many removals run.
    private var releases: [(id: String, pool: String)] = []
    private var releasing = 0
    /// One removal at a time: a database's teardown is heavy work for the engine and the kernel,
    /// and several at once slow the claims that follow (first query 6.1 → 5.0 ms p50 on Docker
    /// with one instead of four); a suite gives members back at the pace of its tests anyway.
    private static let releaseParallelism = 1
    /// Removals also wait while claims come in quick succession: a teardown slows the next
    /// claim's first query for as long as it runs (6.2 → 7.8 ms p50 on Docker when removals ran
    /// from the ninth of 20 claims on). Up to a backlog of the pool's `max` per pool: they were
    /// its members, so no more wait than the pool was allowed to run.
    private static let claimsQuietAfter = Duration.milliseconds(100)
    private var lastClaim = ContinuousClock.now - .seconds(1)
    private var quietWake: Task<Void, Never>?

    public init(runtime: Runtime, store: PoolStore, logger: Logger) {
        self.runtime = runtime
        self.store = store
        self.logger = logger
    }

    // MARK: Lifecycle

    /// Takes the pools of the state file back: members still running that were ready stay
    /// ready, the others (booting when ocimand stopped, or drained) are removed. Then boots
    /// what is missing and follows the members' deaths.
    public func start() async {
        let saved = store.snapshot
        for (name, stored) in saved.pools.sorted(by: { $0.key < $1.key }) {
            let key = stored.spec.key
            var ready: [String] = []
            let members = (try? await runtime.engine.listContainers(labels: ["\(ManagedLabels.pool)=\(name)"], name: nil)) ?? []
            var leftovers: [String] = []
            for member in members where saved.claims[member.id] == nil {
                if stored.ready.contains(member.id), member.state.running, member.labels[ManagedLabels.poolKey] == key {
                    ready.append(member.id)
                } else {
                    leftovers.append(member.id)
                }
            }
            ready.sort { stored.ready.firstIndex(of: $0)! < stored.ready.firstIndex(of: $1)! }
            _ = await runtime.removeContainers(leftovers)
            pools[name] = Live(spec: stored.spec, key: key, ready: ready, claimed: stored.claimed)
            persist(name)
            logger.info("pool restored", metadata: ["pool": "\(name)", "ready": "\(ready.count)"])
        }
        // Claims of containers removed while no ocimand watched (released, reaped) are dropped.
        if let existing = try? await runtime.engine.listContainers(labels: [ManagedLabels.pool], name: nil) {
            let ids = Set(existing.map(\.id))
            store.update { state in state.claims = state.claims.filter { ids.contains($0.key) } }
        }
        watcher = Task { await self.watchMembers() }
        for name in pools.keys { replenish(name) }
    }

    /// Stops booting and watching; members stay for the next start.
    /// Released members still queued are removed now, and removals under way are waited for (at
    /// most `bootCancelGrace`): the next ocimand might use another state directory, where no claim
    /// would tell its reaper that they were given back.
    public func stop() async {
        watcher?.cancel()
        let boots = pools.values.flatMap { $0.booting.values }
        for boot in boots { boot.cancel() }
        await Self.awaitBoots(boots)
        quietWake?.cancel()
        let queued = releases.map(\.id)
        releases = []
        _ = await runtime.removeContainers(queued)
        for id in queued { store.removalEnded(id) }
        let deadline = ContinuousClock.now + Self.bootCancelGrace
        while releasing > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for cancelled boots to end, at most `bootCancelGrace`: a boot still in an engine
    /// call past it removes its own container when it ends (`booted` finds no pool).
    private static let bootCancelGrace = Duration.seconds(5)

    private static func awaitBoots(_ boots: [Task<Void, Never>]) async {
        final class Ended: Sendable { let flag = Atomic<Bool>(false) }
        let ended = Ended()
        Task {
            for boot in boots { await boot.value }
            ended.flag.store(true, ordering: .releasing)
        }
        let deadline = ContinuousClock.now + bootCancelGrace
        while !ended.flag.load(ordering: .acquiring), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: Routes

    public func put(_ name: String, _ spec: PoolSpec) async throws(OcimanError) -> PoolStatus {
        try Self.validate(name, spec, sessions: runtime.sessions)
        let key = spec.key
        if var live = pools[name] {
            let drained = live.key == key ? [] : live.ready
            if live.key != key {
                logger.info("pool specification changed: draining", metadata: ["pool": "\(name)", "members": "\(drained.count)"])
                live.ready = []
                live.booted = [:]
                live.failures = 0
                live.pausedUntil = nil
            }
            live.spec = spec
            live.key = key
            pools[name] = live
            persist(name)
            if !drained.isEmpty { Task { _ = await runtime.removeContainers(drained) } }
        } else {
            pools[name] = Live(spec: spec, key: key, ready: [], claimed: 0)
            persist(name)
        }
        replenish(name)
        return try status(name)
    }

    public func status(_ name: String) throws(OcimanError) -> PoolStatus {
        guard let live = pools[name] else { throw Self.unknown(name) }
        return PoolStatus(
            name: name, key: live.key, spec: live.spec, ready: live.ready.count, booting: live.booting.count,
            claimed: live.claimed)
    }

    /// Removes the pool: stops its boots, then removes every member not handed out (claimed
    /// ones belong to their claimers).
    public func delete(_ name: String) async throws(OcimanError) {
        guard let live = pools.removeValue(forKey: name) else { throw Self.unknown(name) }
        for waiter in live.waiters { waiter.continuation.resume(returning: nil) }
        for boot in live.booting.values { boot.cancel() }
        await Self.awaitBoots(Array(live.booting.values))
        store.update { $0.pools[name] = nil }
        let claims = store.snapshot.claims
        let members: [ContainerSummary]
        do {
            members = try await runtime.engine.listContainers(labels: ["\(ManagedLabels.pool)=\(name)"], name: nil)
        } catch {
            throw OcimanError(converting: error, context: "listing the members of pool \(name)")
        }
        let outcome = await runtime.removeContainers(members.map(\.id).filter { claims[$0] == nil })
        if let (_, error) = outcome.failures.first { throw error }
        recordGauges(name, ready: 0, booting: 0)
    }

    public enum ClaimOutcome: Sendable {
        case claimed(Container)
        /// No member became ready in time; one is expected after `retryAfterSeconds`.
        case noneReady(detail: String, retryAfterSeconds: Int)
    }

    /// Hands out a ready member that was never handed out, or waits for one to boot.
    public func claim(_ name: String, _ options: PoolClaimOptions) async throws(OcimanError) -> ClaimOutcome {
        try OcimanError.checkBounds(options.ttlSeconds, IntegerBounds.ttlSeconds, field: "ttl_seconds")
        guard pools[name] != nil else { throw Self.unknown(name) }
        if let session = options.session { try runtime.sessions.requireActive(session) }
        if let member = options.name { try Self.checked { () throws(ValidationError) in try Validation.containerName(member) } }
        try Self.checked { () throws(ValidationError) in try Validation.callerLabels(options.labels) }
        let started = ContinuousClock.now
        lastClaim = started
        while true {
            guard let member = await take(name, within: options.timeout - (ContinuousClock.now - started)) else {
                guard let live = pools[name] else { throw Self.unknown(name) }
                return .noneReady(
                    detail: "no member of pool \(name) became ready within \(options.timeout)"
                        + (live.lastError.map { " (the last boot failed: \($0))" } ?? ""),
                    retryAfterSeconds: Int(live.lastBoot.components.seconds) + 1)
            }
            // A member can die after its wait passed and before its death event arrived; such a
            // member is never handed out. Its main process, when this host sees it, tells at once;
            // else an inspect does.
            let container: Container
            if let inspected = member.inspected, member.isAlive == true {
                container = inspected.container
            } else if let current = try? await runtime.inspect(member.id), current.state.running {
                container = current
            } else {
                await discard(member.id, of: name)
                continue
            }
            Timer(label: "ociman_pool_claim_wait_seconds", dimensions: [("pool", name)])
                .recordNanoseconds((ContinuousClock.now - started).saturatingNanoseconds)
            return .claimed(try await handOut(container, of: name, options))
        }
    }

    /// Ends the claim on `id` (a member claimed from `name`) and removes it in the background.
    /// The claim's expiry is written first, so the reaper finishes the removal if ocimand
    /// stops before it does.
    public func release(_ name: String, member id: String) throws(OcimanError) {
        let claims = store.snapshot.claims
        guard let (fullID, claim) = claims.first(where: { $0.key == id || ($0.key.hasPrefix(id) && id.count >= 12) }),
            claim.pool == name, claim.released != true
        else { throw .notFound("no member \(id) claimed from pool \(name)") }
        var expired = claim
        expired.expiresAt = Int64(Date().timeIntervalSince1970)
        expired.released = true
        logUnwritten(store.record(fullID, expired))
        store.removalQueued(fullID)
        releases.append((fullID, name))
        drainReleases()
    }

    private func drainReleases() {
        let quiet = lastClaim + Self.claimsQuietAfter
        if releasing == 0, !releaseBacklogFull, ContinuousClock.now < quiet {
            if quietWake == nil {
                quietWake = Task {
                    try? await Task.sleep(until: quiet)
                    self.claimsWentQuiet()
                }
            }
            return
        }
        while releasing < Self.releaseParallelism, !releases.isEmpty {
            let id = releases.removeFirst().id
            releasing += 1
            Task {
                await runtime.removeQuietly(id)
                self.releaseEnded(id)
            }
        }
    }

    /// Whether a pool has as many released members waiting as its `max` (a deleted pool: any).
    private var releaseBacklogFull: Bool {
        var waiting: [String: Int] = [:]
        for release in releases { waiting[release.pool, default: 0] += 1 }
        return waiting.contains { pool, count in count >= pools[pool]?.spec.max ?? 0 }
    }

    private func claimsWentQuiet() {
        quietWake = nil
        drainReleases()
    }

    /// The claim stays until the container's `destroy` event (or the next start) drops it: a
    /// removal that failed is still the reaper's to finish.
    private func releaseEnded(_ id: String) {
        store.removalEnded(id)
        releasing -= 1
        drainReleases()
    }

    // MARK: Claims

    /// The oldest ready member, or one that becomes ready within `timeout` (booting one when
    /// the pool has room); nil when none does.
    /// A ready member (with its boot's inspect when this process booted it), or one booted for
    /// this claim within `timeout`.
    private func take(_ name: String, within timeout: Duration) async -> Member? {
        guard var live = pools[name] else { return nil }
        if !live.ready.isEmpty {
            // The claim (`handOut`) records it: the state file keeps it listed as ready until its
            // next rewrite, and the claim tells it apart after a restart.
            let id = live.ready.removeFirst()
            let member = live.booted.removeValue(forKey: id) ?? Member(id: id)
            pools[name] = live
            replenish(name)
            return member
        }
        guard timeout > .zero else { return nil }
        let waiterID = UUID()
        return await withCheckedContinuation { continuation in
            pools[name]?.waiters.append(Waiter(id: waiterID, continuation: continuation))
            replenish(name)
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(waiterID, of: name)
            }
        }
    }

    private func expire(_ waiterID: UUID, of name: String) {
        guard let index = pools[name]?.waiters.firstIndex(where: { $0.id == waiterID }) else { return }
        pools[name]?.waiters.remove(at: index).continuation.resume(returning: nil)
        replenish(name)
    }

    /// Records the claim (so the reaper applies its session or time-to-live), renames the
    /// container when asked, and answers it as the claimer sees it.
    private func handOut(_ container: Container, of name: String, _ options: PoolClaimOptions) async throws(OcimanError)
        -> Container
    {
        let expiresAt = options.ttlSeconds.map { Int64(Date().timeIntervalSince1970) + Int64($0) }
        pools[name]?.claimed += 1
        let claim = PoolStore.Claim(
            pool: name, session: options.session, expiresAt: expiresAt, labels: options.labels.isEmpty ? nil : options.labels)
        logUnwritten(store.record(container.id, claim, claimed: pools[name]?.claimed))
        Counter(label: "ociman_pool_claims_total", dimensions: [("pool", name)]).increment()
        var claimed = container
        claimed.labels = store.labels(of: container.id, engineLabels: container.labels)
        if let newName = options.name {
            do {
                try await runtime.engine.renameContainer(container.id, to: newName)
            } catch {
                // The member is the caller's already; a name in use must not leak it.
                await runtime.removeQuietly(container.id)
                throw OcimanError(converting: error, context: "naming the claimed container \(newName)")
            }
            claimed.name = newName
        }
        return claimed
    }

    /// A member that cannot be handed out is removed and replaced.
    private func discard(_ id: String, of name: String) async {
        logger.info("pool member died before it was claimed: replacing it", metadata: ["pool": "\(name)", "container": "\(id)"])
        await runtime.removeQuietly(id)
        replenish(name)
    }

    // MARK: Boots

    /// Boots members until the pool has `size` ready or booting (plus one per waiting claim),
    /// never more than `max` nor more than `bootConcurrency` booting at once.
    private func replenish(_ name: String) {
        guard var live = pools[name] else { return }
        defer { recordGauges(name, ready: pools[name]?.ready.count ?? 0, booting: pools[name]?.booting.count ?? 0) }
        if let pausedUntil = live.pausedUntil, ContinuousClock.now < pausedUntil { return }
        let wanted = min(live.spec.max, live.spec.size + live.waiters.count)
        while live.ready.count + live.booting.count < wanted, live.booting.count < live.spec.bootConcurrency {
            let token = UUID()
            let key = live.key
            let spec = live.spec
            live.booting[token] = Task { await self.boot(name, key: key, spec: spec, token: token) }
        }
        pools[name] = live
    }

    private func boot(_ name: String, key: String, spec: PoolSpec, token: UUID) async {
        let started = ContinuousClock.now
        let member: InspectedContainer
        do {
            member = try await runtime.runInspectedContainer(spec.run, ownLabels: [
                ManagedLabels.pool: name, ManagedLabels.poolKey: key,
            ])
        } catch {
            // A member that timed out or exited during its wait is left by the run: remove it.
            switch error {
            case .timedOut(_, .some(let id), _), .exitedBeforeReady(_, let id, _): await runtime.removeQuietly(id)
            default: break
            }
            bootFailed(name, token: token, error)
            return
        }
        if let warmUp = spec.warmUp {
            do {
                try await runtime.warmUp(member.container.id, warmUp)
            } catch {
                await runtime.removeQuietly(member.container.id)
                bootFailed(name, token: token, error)
                return
            }
        }
        booted(member, name, key: key, token: token, took: ContinuousClock.now - started)
    }

    private func booted(_ member: InspectedContainer, _ name: String, key: String, token: UUID, took: Duration) {
        let id = member.container.id
        guard var live = pools[name], live.booting.removeValue(forKey: token) != nil, live.key == key, !Task.isCancelled
        else {
            // Deleted, drained or stopping meanwhile: the member has no pool.
            pools[name]?.booting[token] = nil
            Task { await runtime.removeQuietly(id) }
            return
        }
        Timer(label: "ociman_pool_boot_seconds", dimensions: [("pool", name)]).recordNanoseconds(took.saturatingNanoseconds)
        live.lastBoot = took
        live.failures = 0
        live.lastError = nil
        live.pausedUntil = nil
        if !live.waiters.isEmpty {
            live.waiters.removeFirst().continuation.resume(returning: Member(booted: member))
        } else {
            live.ready.append(id)
            live.booted[id] = Member(booted: member)
        }
        pools[name] = live
        persist(name)
        replenish(name)
    }

    /// A failed boot pauses the pool's boots (1 s, doubling up to 32 s) so that a broken
    /// specification does not spin.
    private func bootFailed(_ name: String, token: UUID, _ error: OcimanError) {
        guard var live = pools[name], live.booting.removeValue(forKey: token) != nil, !Task.isCancelled else { return }
        live.failures += 1
        live.lastError = error.description
        let pause = Duration.seconds(1 << min(live.failures - 1, 5))
        live.pausedUntil = ContinuousClock.now + pause
        pools[name] = live
        logger.warning(
            "pool member failed to boot", metadata: ["pool": "\(name)", "error": "\(error)", "pause": "\(pause)"])
        Task {
            try? await Task.sleep(for: pause)
            self.replenish(name)
        }
    }

    // MARK: Deaths

    /// Follows the engine's events for pool members: a ready member that dies is removed and
    /// replaced; a claimed container that is removed drops its claim.
    private func watchMembers() async {
        let filter = EventFilter(labels: [ManagedLabels.pool], kinds: [.die, .destroy])
        while !Task.isCancelled {
            do {
                for try await event in try await runtime.engine.events(filter) {
                    memberEvent(event)
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("pool watcher: the engine's events ended, following again", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func memberEvent(_ event: EngineEvent) {
        if event.kind == .destroy {
            if store.snapshot.claims[event.id] != nil { store.record(event.id, nil) }
        }
        guard let name = event.labels[ManagedLabels.pool], let index = pools[name]?.ready.firstIndex(of: event.id) else {
            return
        }
        pools[name]?.ready.remove(at: index)
        pools[name]?.booted[event.id] = nil
        persist(name)
        Task { await discard(event.id, of: name) }
    }

    // MARK: State

    /// Writes the pool to the state file.
    private func persist(_ name: String) {
        let stored = pools[name].map { PoolStore.StoredPool(spec: $0.spec, ready: $0.ready, claimed: $0.claimed) }
        logUnwritten(store.update { $0.pools[name] = stored })
    }

    /// A state that cannot be written stays in memory; the next write may succeed.
    private func logUnwritten(_ error: OcimanError?) {
        if let error { logger.warning("cannot write the pool state", metadata: ["error": "\(error)"]) }
    }

    private func recordGauges(_ name: String, ready: Int, booting: Int) {
        Gauge(label: "ociman_pool_members", dimensions: [("pool", name), ("state", "ready")]).record(ready)
        Gauge(label: "ociman_pool_members", dimensions: [("pool", name), ("state", "booting")]).record(booting)
    }

    static func unknown(_ name: String) -> OcimanError { .notFound("no pool named \(name)") }

    static func checked(_ body: () throws(ValidationError) -> Void) throws(OcimanError) {
        do { try body() } catch { throw OcimanError(error) }
    }

    /// Members are the pool's until claimed: no name, session, time-to-live or auto-remove.
    static func validate(_ name: String, _ spec: PoolSpec, sessions: SessionStore) throws(OcimanError) {
        try OcimanError.checkBounds(spec.size, IntegerBounds.poolSize, field: "size")
        try OcimanError.checkBounds(spec.max, IntegerBounds.poolMax, field: "max")
        try OcimanError.checkBounds(spec.bootConcurrency, IntegerBounds.poolBootConcurrency, field: "boot_concurrency")
        do {
            try checked { () throws(ValidationError) in try Validation.runSpec(spec.run) }
        } catch {
            // The run specification is the pool's `run` member: its fields are named from there.
            guard case .invalid(let field, let message) = error else { throw error }
            throw .invalid(field: field.map { "run." + $0 }, message: message)
        }
        let refused: [(String, Bool)] = [
            ("run.name", spec.run.name != nil), ("run.session", spec.run.session != nil),
            ("run.ttl_seconds", spec.run.ttlSeconds != nil), ("run.auto_remove", spec.run.autoRemove),
        ]
        if let (field, _) = refused.first(where: \.1) {
            throw .invalid(field: field, message: "\(field) cannot be set on a pool: members are named and owned by their claim")
        }
        if let warmUp = spec.warmUp {
            try checked { () throws(ValidationError) in
                try Validation.command(warmUp.command, field: "warm_up.command")
                try IntegerBounds.check(
                    warmUp.timeoutSeconds, IntegerBounds.readinessTimeoutSeconds, field: "warm_up.timeout_seconds")
            }
        }
        if spec.max < spec.size {
            throw .invalid(field: "max", message: "max (\(spec.max)) is below size (\(spec.size))")
        }
    }
}
