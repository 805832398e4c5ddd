import Foundation

/// A warm pool as `PUT /pools/{name}` states it.
public struct PoolSpec: Sendable, Equatable, Codable {
    /// What each member runs, its readiness wait included (no name, session or time-to-live:
    /// a member belongs to the pool until it is claimed).
    public var run: RunSpec
    /// Ready members to keep.
    public var size: Int
    /// Members booting or ready at once.
    public var max: Int
    /// Members booted at the same time.
    public var bootConcurrency: Int
    /// Run in each member once its wait passed, before it is ready to be handed out.
    public var warmUp: PoolWarmUp?

    public init(run: RunSpec, size: Int, max: Int? = nil, bootConcurrency: Int = 2, warmUp: PoolWarmUp? = nil) {
        self.run = run
        self.size = size
        self.max = max ?? Swift.max(size, 1)
        self.bootConcurrency = bootConcurrency
        self.warmUp = warmUp
    }

    /// The content hash of the run specification, the way builds are content-addressed: the
    /// same specification is the same key whatever the pool's name or size.
    public var key: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var hasher = SegmentHasher()
        hasher.push("ociman-pool-v1")
        hasher.push((try? Array(encoder.encode(run))) ?? [])
        // Only when given, so that pools without one keep the keys they had before warm-ups.
        if let warmUp {
            hasher.push("warm_up")
            hasher.push((try? Array(encoder.encode(warmUp))) ?? [])
        }
        return "sha256:" + hasher.finalize().hex
    }
}

/// Work each member does once, after its wait and before its first claimer: what that claimer
/// should not pay for. A database's first client connections build its caches (PostgreSQL 15
/// here: the first 12 ms, the second 5.1, later ones 3.8), or a seeded table can be read into
/// memory.
public struct PoolWarmUp: Sendable, Equatable, Codable {
    /// Run by an exec, as the container's user; it must exit with 0.
    public var command: [String]
    /// A member whose warm-up runs longer failed to boot.
    public var timeoutSeconds: Int

    public init(command: [String], timeoutSeconds: Int = 60) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }
}

/// What `GET /pools/{name}` reports.
public struct PoolStatus: Sendable, Equatable {
    public var name: String
    public var key: String
    public var spec: PoolSpec
    public var ready: Int
    public var booting: Int
    /// Members handed out since the pool was created.
    public var claimed: Int
}

/// What a claim asks for the member it takes.
public struct PoolClaimOptions: Sendable, Equatable {
    public var name: String?
    /// Added to the member's labels as inspect and list report them (kept by ociman).
    public var labels: [String: String]
    public var session: String?
    public var ttlSeconds: Int?
    /// How long to wait for a member when none is ready.
    public var timeout: Duration

    public init(
        name: String? = nil, labels: [String: String] = [:], session: String? = nil, ttlSeconds: Int? = nil,
        timeout: Duration = .seconds(30)
    ) {
        self.name = name
        self.labels = labels
        self.session = session
        self.ttlSeconds = ttlSeconds
        self.timeout = timeout
    }
}
