import Foundation
import Synchronization

/// Pools, their ready members and the claims handed out, kept in `pools-<engine>.json` in the state
/// directory (rewritten atomically on every change) so that they survive a restart. A claimed
/// container keeps its pool labels; its claim (session, time-to-live) lives here, where the
/// reaper reads it.
public final class PoolStore: Sendable {
    struct StoredPool: Codable, Equatable {
        var spec: PoolSpec
        /// Ready members, oldest first.
        var ready: [String]
        var claimed: Int
    }

    public struct Claim: Codable, Equatable, Sendable {
        /// The pool the member was claimed from.
        var pool: String?
        var session: String?
        /// Unix seconds.
        var expiresAt: Int64?
        /// Given back (`DELETE /pools/{name}/members/{id}`): being removed.
        var released: Bool?
        /// The claimer's labels: an engine cannot relabel a container, so ociman keeps them.
        var labels: [String: String]?
    }

    struct State: Codable, Equatable {
        var version = 1
        var pools: [String: StoredPool] = [:]
        var claims: [String: Claim] = [:]
    }

    private let stateFile: String?
    private let state: Mutex<State>
    /// Released members this process is removing, one at a time: the reaper leaves them to it
    /// (several removals at once slow the claims). Not stored: after a restart the claim's passed
    /// expiry has the reaper remove them.
    private let removing = Mutex<Set<String>>([])

    /// Pools in memory only (tests, or no state directory).
    public init() {
        stateFile = nil
        state = Mutex(State())
    }

    /// Loads `pools-<engine>.json` from `directory` (created by the session store) when it
    /// exists. One file per engine: ocimands for Docker and Podman may share a state
    /// directory, and a pool boots its members on the engine it was made on.
    public init(directory: String, engine: BackendKind) throws(OcimanError) {
        let path = directory + "/pools-\(engine.rawValue).json"
        stateFile = path
        guard let data = FileManager.default.contents(atPath: path) else {
            state = Mutex(State())
            return
        }
        do {
            state = Mutex(try JSONDecoder().decode(State.self, from: data))
        } catch {
            throw .unavailable("cannot read the pool state \(path): \(error)")
        }
    }

    var snapshot: State { state.withLock { $0 } }

    /// Applies `change` and writes the result; a state that cannot be written is logged by the
    /// caller, the change stays in memory.
    @discardableResult
    func update(_ change: (inout State) -> Void) -> OcimanError? {
        let changed = state.withLock { state in
            change(&state)
            return state
        }
        guard let stateFile else { return nil }
        do {
            // On every claim, so no fsync: a claim must outlive ocimand (else its member could be
            // handed out again after a restart), but a machine that crashed stopped every member too.
            try SessionStore.write(changed, to: stateFile, durable: false)
            return nil
        } catch {
            return error
        }
    }

    /// A container's labels as inspect, list and the reaper see them: the engine's, and for a
    /// claimed pool member its claim's on top (the claimer's, its session and time-to-live).
    public func labels(of containerID: String, engineLabels: [String: String]) -> [String: String] {
        guard let claim = state.withLock({ $0.claims[containerID] }) else { return engineLabels }
        var labels = engineLabels.merging(claim.labels ?? [:]) { $1 }
        if let session = claim.session { labels[ManagedLabels.session] = session }
        if let expiresAt = claim.expiresAt { labels[ManagedLabels.expiresAt] = String(expiresAt) }
        return labels
    }

    func removalQueued(_ id: String) { _ = removing.withLock { $0.insert(id) } }
    func removalEnded(_ id: String) { _ = removing.withLock { $0.remove(id) } }
    public func isBeingRemoved(_ id: String) -> Bool { removing.withLock { $0.contains(id) } }

    /// Whether some claim carries labels of its claimer, which only ociman can match.
    public var anyClaimHasLabels: Bool {
        state.withLock { $0.claims.values.contains { !($0.labels ?? [:]).isEmpty } }
    }
}
