import EngineDriver
import Logging
import Synchronization

/// The backend-neutral runtime: what every route calls. One instance per ocimand process.
public final class Runtime: Sendable {
    public let kind: BackendKind
    public let socketPath: String
    public let engine: EngineClient
    let logger: Logger
    /// Directories whose contents builds and `/hash` may read (SPEC §7); empty means none.
    public let contextRoots: [String]
    /// Podman's `/version` takes ≈ 300 ms, so it is read once (SPEC §9).
    private let cachedVersion = Mutex<String?>(nil)
    /// Session leases (`/sessions`); the reaper and `POST /containers` consult them.
    public let sessions: SessionStore
    /// Exec processes started and not yet over, so that they can be ended when nobody reads them.
    public let execLedger: ExecLedger

    public init(
        kind: BackendKind,
        socketPath: String,
        engineTimeout: Duration,
        contextRoots: [String] = [],
        sessions: SessionStore = SessionStore(),
        execLedger: ExecLedger = ExecLedger(),
        logger: Logger
    ) {
        self.kind = kind
        self.sessions = sessions
        self.execLedger = execLedger
        self.contextRoots = contextRoots
        self.socketPath = socketPath
        self.engine = EngineClient(socketPath: socketPath, defaultTimeout: engineTimeout)
        self.logger = logger
    }

    public var endpoint: String { "unix://\(socketPath)" }

    /// Negotiates the API version and reads the engine version; called once at startup.
    public func connect() async throws(OcimanError) {
        _ = try await OcimanError.wrap("connecting to \(kind.rawValue) at \(endpoint)") {
            let ping = try await engine.ping()
            if ping.isPodman != (kind == .podman) {
                throw OcimanError.unavailable(
                    "\(endpoint) is \(ping.isPodman ? "Podman" : "Docker"), not \(kind.rawValue)")
            }
            let version = try await engine.version().version
            cachedVersion.withLock { $0 = version }
        }
    }

    /// True when the engine answers `/_ping` now.
    public func isReady() async -> Bool {
        do {
            _ = try await engine.send(EngineRequest(.GET, "/_ping", api: .unversioned, timeout: .seconds(2)))
            return true
        } catch {
            return false
        }
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
        let info = try await OcimanError.wrap {
            let ping: EngineClient.Ping
            if let known = engine.negotiatedPing { ping = known } else { ping = try await engine.ping() }
            let version: String
            if let cached = cachedVersion.withLock({ $0 }) {
                version = cached
            } else {
                version = try await engine.version().version
                cachedVersion.withLock { $0 = version }
            }
            let rootless = try await engine.isRootless(podman: kind == .podman)
            // The default bridge network is where containers without options land.
            let network = try await engine.inspectNetwork(kind == .podman ? "podman" : "bridge")
            let configs = network.ipam?.config ?? []
            return BackendInfo(
                kind: kind,
                version: version,
                apiVersion: ping.apiVersion,
                rootless: rootless,
                endpoint: endpoint,
                bridgeSubnets: configs.compactMap(\.subnet),
                hostGateway: HostGateway.address(
                    gateways: configs.compactMap(\.gateway), subnets: configs.compactMap(\.subnet))
            )
        }
        cachedBackendInfo.withLock { $0 = (info, ContinuousClock.now) }
        return info
    }
}
