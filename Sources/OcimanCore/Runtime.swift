import Logging
import Synchronization

/// The backend-neutral runtime: what every route calls. One instance per ocimand process.
public final class Runtime: Sendable {
    /// Only the runtime talks to the engine; handlers go through the runtime.
    let engine: any ContainerEngine
    let logger: Logger
    /// Directories whose contents builds and `/hash` may read (SPEC §7); empty means none.
    public let contextRoots: [String]
    /// Session leases (`/sessions`); the reaper and `POST /containers` consult them.
    public let sessions: SessionStore
    /// Exec processes started and not yet over, so that they can be ended when nobody reads them.
    public let execLedger: ProcessLedger
    /// Warm pools' state: the reaper judges claimed members by the claims kept there.
    public let pools: PoolStore

    public init(
        engine: any ContainerEngine,
        contextRoots: [String] = [],
        sessions: SessionStore = SessionStore(),
        execLedger: ProcessLedger = ProcessLedger(),
        pools: PoolStore = PoolStore(),
        logger: Logger
    ) {
        self.engine = engine
        self.sessions = sessions
        self.pools = pools
        self.execLedger = execLedger
        self.contextRoots = contextRoots
        self.logger = logger
    }

    public var kind: BackendKind { engine.kind }
    public var endpoint: String { engine.endpoint }

    /// Negotiates the API version and reads the engine version; called once at startup.
    public func connect() async throws(OcimanError) {
        try await OcimanError.wrap("connecting to \(kind.rawValue) at \(endpoint)") { try await engine.connect() }
    }

    /// True when the engine answers now.
    public func isReady() async -> Bool {
        await engine.answers()
    }

    public struct BackendInfo: Sendable {
        public var kind: BackendKind
        public var version: String
        public var apiVersion: String
        public var rootless: Bool
        public var endpoint: String
        public var bridgeSubnets: [String]
        public var hostGateway: String?
    }

    /// Rootless mode and the bridge network change only when the engine is reconfigured, and
    /// Docker's `/info` alone takes several milliseconds, so what `/backend` reports is reused
    /// for a few seconds instead of costing three engine calls per request.
    private static let backendInfoLifetime: Duration = .seconds(10)
    private let cachedBackendInfo = Mutex<(info: BackendInfo, readAt: ContinuousClock.Instant)?>(nil)

    public func backendInfo() async throws(OcimanError) -> BackendInfo {
        if let cached = cachedBackendInfo.withLock({ $0 }),
            ContinuousClock.now - cached.readAt < Self.backendInfoLifetime
        {
            return cached.info
        }
        let engineInfo = try await OcimanError.wrap { try await engine.info() }
        let info = BackendInfo(
            kind: kind,
            version: engineInfo.version,
            apiVersion: engineInfo.apiVersion,
            rootless: engineInfo.rootless,
            endpoint: endpoint,
            bridgeSubnets: engineInfo.bridgeSubnets,
            hostGateway: engineInfo.hostGateway
        )
        cachedBackendInfo.withLock { $0 = (info, ContinuousClock.now) }
        return info
    }
}
