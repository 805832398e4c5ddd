import Foundation
import Glibc
import Synchronization

/// Session leases (`POST /sessions`): ids and expiry times, persisted so that expiry survives a
/// restart of ocimand.
///
/// With a state directory, `sessions.json` there is the source of truth: every operation re-reads it
/// under an advisory lock (`sessions.lock`, flock) and every change rewrites it atomically (temp file,
/// fsync, rename, fsync of the directory). Several ocimand processes may therefore share one state
/// directory (for instance one per engine) and see each other's sessions. Without a directory the
/// state lives in memory only.
///
/// Every store has an owner id, kept in the state file and used as the prefix of each session id it
/// issues. The reaper removes containers of an *unknown* session only when the id carries this
/// prefix (the session was deleted, or expired and was pruned); an id with any other prefix belongs
/// to an ocimand using a different state directory, or to a state file that was lost, and its
/// containers are left alone rather than risk removing live ones.
public final class SessionStore: Sendable {
    /// Allowed `lease_seconds` (the contract's bounds).
    public static let leaseRange = IntegerBounds.leaseSeconds

    public struct Session: Sendable, Equatable {
        public let id: String
        /// Unix time (seconds) at which the lease ends.
        public let expiresAt: Double

        public var expiryDate: Date { Date(timeIntervalSince1970: expiresAt) }
    }

    /// What the reaper decides from: the leases as they stood when the snapshot was read.
    public struct Snapshot: Sendable {
        public let owner: String
        public let expiries: [String: Double]

        public enum Verdict: Sendable, Equatable {
            /// The lease has not ended.
            case live
            /// This store issued the id and the lease ended, or the session was deleted.
            case ended
            /// Not issued by this store: never judged.
            case foreign
        }

        public func verdict(for id: String, at now: Double) -> Verdict {
            if let expiresAt = expiries[id] { return now < expiresAt ? .live : .ended }
            return SessionStore.isIssued(id, by: owner) ? .ended : .foreign
        }
    }

    let stateFile: String?
    private let lockFile: String?
    private let clock: @Sendable () -> Double
    private let state: Mutex<State>

    /// The persisted form; `sessions` maps id → expiry in whole unix milliseconds (integers
    /// survive any JSON parser exactly).
    struct State: Codable, Equatable {
        var version = 1
        var owner: String
        var sessions: [String: Int64] = [:]
    }

    /// Lease ends are kept to the millisecond, rounded up.
    static func milliseconds(_ seconds: Double) -> Int64 { Int64((seconds * 1000).rounded(.up)) }
    static func seconds(_ milliseconds: Int64) -> Double { Double(milliseconds) / 1000 }

    /// A store without persistence (tests, or no state directory).
    public init(clock: @escaping @Sendable () -> Double = SessionStore.wallClock) {
        stateFile = nil
        lockFile = nil
        self.clock = clock
        state = Mutex(State(owner: Self.randomHex(bytes: 8)))
    }

    /// Opens (creating when needed, mode 0700) `directory` and loads or creates its state file.
    public init(
        directory: String,
        clock: @escaping @Sendable () -> Double = SessionStore.wallClock
    ) throws(OcimanError) {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unavailable("cannot create the state directory \(directory): \(error.localizedDescription)")
        }
        stateFile = directory + "/sessions.json"
        lockFile = directory + "/sessions.lock"
        self.clock = clock
        state = Mutex(State(owner: Self.randomHex(bytes: 8)))
        // Fails now, not at the first request, when the file is unreadable or the directory read-only.
        _ = try update { _ in }
    }

    public static let wallClock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    // MARK: Operations

    /// Opens a lease ending `leaseSeconds` from now.
    public func create(leaseSeconds: Int) throws(OcimanError) -> Session {
        try Self.validate(leaseSeconds)
        return try update { state in
            let expiresAt = Self.milliseconds(clock() + Double(leaseSeconds))
            var id: String
            repeat { id = state.owner + Self.randomHex(bytes: 16) } while state.sessions[id] != nil
            state.sessions[id] = expiresAt
            return Session(id: id, expiresAt: Self.seconds(expiresAt))
        }
    }

    /// Moves the end of a live lease to `leaseSeconds` from now; notFound when unknown or ended.
    public func renew(_ id: String, leaseSeconds: Int) throws(OcimanError) -> Session {
        try Self.validate(leaseSeconds)
        return try update { state throws(OcimanError) in
            let now = clock()
            guard let expiresAt = state.sessions[id], now < Self.seconds(expiresAt) else { throw Self.unknown(id) }
            let renewed = Self.milliseconds(now + Double(leaseSeconds))
            state.sessions[id] = renewed
            return Session(id: id, expiresAt: Self.seconds(renewed))
        }
    }

    /// Forgets a session; answers whether it was live.
    @discardableResult
    public func remove(_ id: String) throws(OcimanError) -> Bool {
        try update { state in state.sessions.removeValue(forKey: id) != nil }
    }

    /// The live lease `id`, or nil when unknown or ended.
    public func session(_ id: String) throws(OcimanError) -> Session? {
        let now = clock()
        return try read { state in
            state.sessions[id].map(Self.seconds).flatMap { now < $0 ? Session(id: id, expiresAt: $0) : nil }
        }
    }

    public func isActive(_ id: String) throws(OcimanError) -> Bool {
        try session(id) != nil
    }

    /// For `POST /containers`: a container may only join a live session.
    public func requireActive(_ id: String, field: String = "session") throws(OcimanError) {
        guard try isActive(id) else {
            throw .invalid(field: field, message: "unknown or expired session \(id)")
        }
    }

    public func snapshot() throws(OcimanError) -> Snapshot {
        try read { Snapshot(owner: $0.owner, expiries: $0.sessions.mapValues(Self.seconds)) }
    }

    public var now: Double { clock() }

    static func isIssued(_ id: String, by owner: String) -> Bool {
        id.utf8.count == owner.utf8.count + 32 && id.hasPrefix(owner)
    }

    private static func validate(_ leaseSeconds: Int) throws(OcimanError) {
        try OcimanError.checkBounds(leaseSeconds, leaseRange, field: "lease_seconds")
    }

    static func unknown(_ id: String) -> OcimanError {
        .notFound("no live session \(id)")
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2): fit for unguessable ids
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for _ in 0..<bytes {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            text += [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]]
        }
        return String(decoding: text, as: UTF8.self)
    }

    // MARK: Persistence

    private func read<T: Sendable>(_ body: (State) throws(OcimanError) -> T) throws(OcimanError) -> T {
        try state.withLock { cached throws(OcimanError) in
            guard let stateFile, let lockFile else { return try body(cached) }
            try Self.withFileLock(lockFile, exclusive: false) { () throws(OcimanError) in
                cached = try Self.load(stateFile, fallbackOwner: cached.owner)
            }
            return try body(cached)
        }
    }

    /// Reads, changes and (when anything changed) atomically rewrites the state, pruning ended
    /// leases; `body` sees the state with those already gone.
    private func update<T: Sendable>(_ body: (inout State) throws(OcimanError) -> T) throws(OcimanError) -> T {
        try state.withLock { cached throws(OcimanError) in
            guard let stateFile, let lockFile else {
                Self.prune(&cached, now: clock())
                return try body(&cached)
            }
            return try Self.withFileLock(lockFile, exclusive: true) { () throws(OcimanError) in
                let loaded = try Self.load(stateFile, fallbackOwner: cached.owner)
                var changed = loaded
                Self.prune(&changed, now: clock())
                let result = try body(&changed)
                let missing = access(stateFile, F_OK) != 0
                if changed != loaded || missing { try Self.write(changed, to: stateFile) }
                cached = changed
                return result
            }
        }
    }

    private static func prune(_ state: inout State, now: Double) {
        state.sessions = state.sessions.filter { now < seconds($0.value) }
    }

    private static func withFileLock<T: Sendable>(
        _ path: String,
        exclusive: Bool,
        _ body: () throws(OcimanError) -> T
    ) throws(OcimanError) -> T {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot open \(path)") }
        defer { close(descriptor) }
        while flock(descriptor, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else { throw failure("cannot lock \(path)") }
        }
        return try body()
    }

    /// The state in `path`; a missing file is an empty state owned by `fallbackOwner`.
    static func load(_ path: String, fallbackOwner: String) throws(OcimanError) -> State {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return State(owner: fallbackOwner) }
            throw failure("cannot open \(path)")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read \(path)")
            }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        let state: State
        do {
            state = try JSONDecoder().decode(State.self, from: Data(bytes))
        } catch {
            throw .unavailable("the session state file \(path) is not valid (\(error)); move it aside to start afresh")
        }
        guard state.version == 1, state.owner.utf8.count == 16, state.owner.allSatisfy(\.isHexDigit) else {
            throw .unavailable("the session state file \(path) has an unknown version or owner; move it aside to start afresh")
        }
        return state
    }

    /// Write a temporary file, fsync it, rename it over `path`, fsync the directory: a crash leaves
    /// either the old or the new state, never a torn file.
    /// Replaces the file at `path` atomically (a complete old or new version survives a crash of
    /// this process). `durable` also survives a crash of the machine, at the cost of two fsyncs.
    static func write(_ state: some Encodable, to path: String, durable: Bool = true) throws(OcimanError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes: [UInt8]
        do { bytes = Array(try encoder.encode(state)) } catch { throw .unavailable("cannot encode state: \(error)") }
        // The exclusive lock is held, so one fixed temporary name cannot collide.
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let error = failure("cannot write \(temporary)")
                close(descriptor)
                unlink(temporary)
                throw error
            }
            written += count
        }
        guard !durable || fsync(descriptor) == 0 else {
            let error = failure("cannot fsync \(temporary)")
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        guard durable else { return }
        let directory = (path as NSString).deletingLastPathComponent
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Session state that cannot be read or written makes sessions unavailable (503), not the service.
    private static func failure(_ what: String) -> OcimanError {
        .unavailable("\(what): \(String(cString: strerror(errno)))")
    }
}
