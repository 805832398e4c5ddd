import Foundation
import Synchronization

/// Pools, their ready members and the claims handed out, kept in the state directory so that
/// they survive a restart: `pools-<engine>.json` holds the whole state (rewritten atomically when
/// a pool changes) and `pools-<engine>.claims` a journal of the claims since, one line appended per
/// claim, release or removal. A claim is on the path of every test that claims, and rewriting the
/// whole state took 0.5 ms of its 0.7 here; an append takes tens of µs. The journal is folded into
/// the state file at its next rewrite, or once it holds `journalLimit` lines. A claimed container
/// keeps its pool labels; its claim (session, time-to-live) lives here, where the reaper reads it.
public final class PoolStore: Sendable {
    struct StoredPool: Codable, Equatable {
        var spec: PoolSpec
        /// Ready members, oldest first. A member claimed since the last rewrite may still be
        /// listed: its claim tells it apart.
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

    /// One line of the journal: the claim on `id` as it now is (none: dropped), and for a new
    /// claim its pool's count of members handed out.
    struct ClaimRecord: Codable, Equatable {
        var id: String
        var claim: Claim?
        var claimed: Int?

        func apply(to state: inout State) {
            state.claims[id] = claim
            guard let pool = claim?.pool, let claimed, var stored = state.pools[pool] else { return }
            stored.claimed = max(stored.claimed, claimed)
            stored.ready.removeAll { $0 == id }
            state.pools[pool] = stored
        }
    }

    static let journalLimit = 1000

    private struct Files {
        let state: String
        let journal: String
        /// Open for appending once the first line is written.
        var journalDescriptor: Int32 = -1
        var journalLines = 0
    }

    /// Everything under one lock: a journal line must never land in a journal that a rewrite of
    /// the state (which already holds its claim) is about to empty.
    private let guarded: Mutex<(state: State, files: Files?)>
    /// Released members this process is removing, one at a time: the reaper leaves them to it
    /// (several removals at once slow the claims). Not stored: after a restart the claim's passed
    /// expiry has the reaper remove them.
    private let removing = Mutex<Set<String>>([])

    /// Pools in memory only (tests, or no state directory).
    public init() {
        guarded = Mutex((State(), nil))
    }

    /// Loads `pools-<engine>.json` from `directory` (created by the session store) when it
    /// exists, then the claims journaled since. One pair of files per engine: ocimands for
    /// Docker and Podman may share a state directory, and a pool boots its members on the
    /// engine it was made on.
    public init(directory: String, engine: BackendKind) throws(OcimanError) {
        let files = Files(
            state: directory + "/pools-\(engine.rawValue).json", journal: directory + "/pools-\(engine.rawValue).claims")
        var state = State()
        var lines = 0
        do {
            if let data = FileManager.default.contents(atPath: files.state) {
                state = try JSONDecoder().decode(State.self, from: data)
            }
        } catch {
            throw .unavailable("cannot read the pool state \(files.state): \(error)")
        }
        if let journal = FileManager.default.contents(atPath: files.journal) {
            var lineStart = 0
            while let newline = journal[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                do {
                    try JSONDecoder().decode(ClaimRecord.self, from: journal[lineStart..<newline]).apply(to: &state)
                } catch {
                    throw .unavailable("cannot read line \(lines + 1) of the pool claims journal \(files.journal): \(error)")
                }
                lines += 1
                lineStart = newline + 1
            }
            // A last line without its newline was cut short by a crash while it was written (its
            // claim was never answered): it is cut off, so that the next line starts afresh.
            if lineStart < journal.count, truncate(files.journal, off_t(lineStart)) != 0 {
                throw Self.failure("cannot cut the torn last line off \(files.journal)")
            }
        }
        var opened = files
        opened.journalLines = lines
        guarded = Mutex((state, opened))
    }

    deinit {
        guarded.withLock { if let descriptor = $0.files?.journalDescriptor, descriptor >= 0 { close(descriptor) } }
    }

    var snapshot: State { guarded.withLock { $0.state } }

    /// Applies `change` and rewrites the state file, which then holds every journaled claim;
    /// a state that cannot be written is logged by the caller, the change stays in memory.
    @discardableResult
    func update(_ change: (inout State) -> Void) -> OcimanError? {
        guarded.withLock { guarded in
            change(&guarded.state)
            return Self.rewrite(&guarded)
        }
    }

    /// Records the claim on `id` as it now is (nil: dropped) with one appended line. `claimed`:
    /// for a new claim, its pool's count of members handed out.
    @discardableResult
    func record(_ id: String, _ claim: Claim?, claimed: Int? = nil) -> OcimanError? {
        let record = ClaimRecord(id: id, claim: claim, claimed: claimed)
        return guarded.withLock { guarded in
            record.apply(to: &guarded.state)
            guard var files = guarded.files else { return nil }
            if files.journalLines >= Self.journalLimit { return Self.rewrite(&guarded) }
            var line: Data
            do { line = try JSONEncoder().encode(record) } catch { return .unavailable("cannot encode a pool claim: \(error)") }
            line.append(UInt8(ascii: "\n"))
            if files.journalDescriptor < 0 {
                files.journalDescriptor = open(files.journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            }
            // One write per line, so that a crash leaves whole lines and at most a torn last one.
            let written = files.journalDescriptor < 0 ? -1 : line.withUnsafeBytes { Glibc.write(files.journalDescriptor, $0.baseAddress, $0.count) }
            let failure = written == line.count ? nil : Self.failure("cannot append to \(files.journal)")
            // A line that did not make it whole is still a line for the rewrite to empty.
            files.journalLines += 1
            guarded.files = files
            guard let failure else { return nil }
            // The state file takes the claim instead, and the rewrite empties the journal.
            return Self.rewrite(&guarded).map { _ in failure }
        }
    }

    /// Writes the whole state over the state file (on every pool change, so no fsync: a machine
    /// that crashed stopped every member too), then empties the journal it now holds.
    private static func rewrite(_ guarded: inout (state: State, files: Files?)) -> OcimanError? {
        guard var files = guarded.files else { return nil }
        do {
            try SessionStore.write(guarded.state, to: files.state, durable: false)
        } catch {
            return error
        }
        guard files.journalLines > 0 else { return nil }
        guard truncate(files.journal, 0) == 0 || errno == ENOENT else { return failure("cannot empty \(files.journal)") }
        files.journalLines = 0
        guarded.files = files
        return nil
    }

    private static func failure(_ what: String) -> OcimanError {
        .unavailable("\(what): \(String(cString: strerror(errno)))")
    }

    /// A container's labels as inspect, list and the reaper see them: the engine's, and for a
    /// claimed pool member its claim's on top (the claimer's, its session and time-to-live).
    public func labels(of containerID: String, engineLabels: [String: String]) -> [String: String] {
        guard let claim = guarded.withLock({ $0.state.claims[containerID] }) else { return engineLabels }
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
        guarded.withLock { $0.state.claims.values.contains { !($0.labels ?? [:]).isEmpty } }
    }
}
