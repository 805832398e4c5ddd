import EngineAdapters
import Foundation
import Glibc
import Logging
import MHDTransport
import OcimanAPI

/// The resolved configuration: flag, else environment variable, else default.
struct Settings {
    var listen: ListenAddress
    var backendOverride: String?
    var engineTimeoutSeconds: Int
    var contextRoots: [String]
    var socketMode: mode_t
    var idleTimeoutSeconds: Int
    var maxConnections: Int
    var maxConnectionsPerClient: Int
    var headerTimeoutSeconds: Int
    var maxBody: Int64
    var maxTarBody: Int64
    var shutdownGraceSeconds: Int
    var logLevel: Logger.Level
    var stateDirectory: String
    var reapIntervalSeconds: Int
    var logFormat: Observability.LogFormat
    /// `LISTEN_FDS`/`LISTEN_PID` were ours: `listen` is the descriptor systemd passed.
    var socketActivated: Bool
    /// Required on every route but /health when set; required to listen beyond loopback.
    var token: String?
    var allowedOrigins: [String]
    var allowedHosts: [String]
    var requestTimeoutSeconds: Int
    /// "auto", or "private" to always run a private `podman system service`.
    var podmanService: String
    /// A `tcp://` engine endpoint without TLS may be beyond loopback.
    var allowPlainTCP: Bool

    init(command: Ocimand, environment: [String: String]) throws {
        func value(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        // Every number has a maximum too: seconds near Int.max overflow once they become deadlines.
        func number<T: FixedWidthInteger>(
            _ flag: T?, _ variable: String, default fallback: T, minimum: T = 0, maximum: T = T.max
        ) throws -> T {
            if let flag {
                guard flag >= minimum, flag <= maximum else {
                    throw Failure("\(variable) must be between \(minimum) and \(maximum), not \(flag)")
                }
                return flag
            }
            guard let text = environment[variable], !text.isEmpty else { return fallback }
            guard let parsed = T(text), parsed >= minimum, parsed <= maximum else {
                throw Failure("invalid \(variable) \"\(text)\": expected a whole number from \(minimum) to \(maximum)")
            }
            return parsed
        }
        let day = 86_400

        let listenText = value(command.listen, "OCIMAN_LISTEN") ?? Defaults.listen
        do {
            listen = try ListenAddress(parsing: listenText)
            // A socket systemd passed wins over the listen address: the unit decides where to listen.
            if let descriptor = try SocketActivation.passedDescriptor(environment: environment, processID: getpid()) {
                listen = .inherited(descriptor: descriptor)
            }
        } catch {
            throw Failure("\(error)")
        }
        if case .inherited = listen { socketActivated = true } else { socketActivated = false }
        // An empty OCIMAN_BACKEND is invalid (SPEC §3), so it is passed through, not dropped.
        backendOverride = command.backend
        engineTimeoutSeconds = try number(command.engineTimeout, "OCIMAN_ENGINE_TIMEOUT", default: Defaults.engineTimeout, minimum: 1, maximum: day)
        let rootsFromEnvironment = (environment["OCIMAN_CONTEXT_ROOTS"] ?? "").split(separator: ":").map(String.init)
        contextRoots = command.contextRoot.isEmpty ? rootsFromEnvironment : command.contextRoot
        let modeText = value(command.socketMode, "OCIMAN_SOCKET_MODE") ?? Defaults.socketMode
        guard let mode = mode_t(modeText, radix: 8), mode <= 0o777 else {
            throw Failure("invalid socket mode \"\(modeText)\": expected octal such as 600 or 660")
        }
        socketMode = mode
        idleTimeoutSeconds = try number(command.idleTimeout, "OCIMAN_IDLE_TIMEOUT", default: Defaults.idleTimeout, minimum: 1, maximum: day)
        maxConnections = try number(command.maxConnections, "OCIMAN_MAX_CONNECTIONS", default: Defaults.maxConnections, minimum: 1)
        maxConnectionsPerClient = try number(command.maxConnectionsPerClient, "OCIMAN_MAX_CONNECTIONS_PER_CLIENT", default: Defaults.maxConnectionsPerClient)
        headerTimeoutSeconds = try number(command.headerTimeout, "OCIMAN_HEADER_TIMEOUT", default: Defaults.headerTimeout, minimum: 1)
        maxBody = try number(command.maxBody, "OCIMAN_MAX_BODY", default: Defaults.maxBody, minimum: 1)
        maxTarBody = try number(command.maxTarBody, "OCIMAN_MAX_TAR_BODY", default: Defaults.maxTarBody, minimum: 1)
        shutdownGraceSeconds = try number(command.shutdownGrace, "OCIMAN_SHUTDOWN_GRACE", default: Defaults.shutdownGrace, maximum: 3_600)
        let levelText = value(command.logLevel, "OCIMAN_LOG_LEVEL") ?? Defaults.logLevel
        guard let level = Logger.Level(rawValue: levelText) else {
            throw Failure("invalid log level \"\(levelText)\": expected trace, debug, info, notice, warning, error or critical")
        }
        logLevel = level
        // Unprivileged users (rootless Podman) cannot write /var/lib.
        let userStateHome = value(nil, "XDG_STATE_HOME") ?? (environment["HOME"] ?? "") + "/.local/state"
        stateDirectory = value(command.stateDir, "OCIMAN_STATE_DIR") ?? (geteuid() == 0 ? "/var/lib/ociman" : userStateHome + "/ociman")
        reapIntervalSeconds = try number(command.reapInterval, "OCIMAN_REAP_INTERVAL", default: Defaults.reapInterval, minimum: 1, maximum: day)
        let formatText = value(command.logFormat, "OCIMAN_LOG_FORMAT") ?? Defaults.logFormat
        guard let format = Observability.LogFormat(rawValue: formatText) else {
            throw Failure("invalid log format \"\(formatText)\": expected text or json")
        }
        logFormat = format
        token = try Self.token(file: value(command.tokenFile, "OCIMAN_TOKEN_FILE"), variable: environment["OCIMAN_TOKEN"])
        func list(_ flags: [String], _ variable: String) -> [String] {
            if !flags.isEmpty { return flags }
            return (environment[variable] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        allowedOrigins = list(command.allowOrigin, "OCIMAN_ALLOW_ORIGINS")
        allowedHosts = list(command.allowHost, "OCIMAN_ALLOW_HOSTS")
        requestTimeoutSeconds = try number(command.requestTimeout, "OCIMAN_REQUEST_TIMEOUT", default: Defaults.requestTimeout, minimum: 1, maximum: day)
        podmanService = value(command.podmanService, "OCIMAN_PODMAN_SERVICE") ?? Defaults.podmanService
        guard ["auto", "private"].contains(podmanService) else {
            throw Failure("invalid podman service \"\(podmanService)\": expected auto or private")
        }
        let plainTCPText = command.allowPlainTCP ? "true" : value(nil, EngineAddress.allowPlainTCPVariable)?.lowercased() ?? "false"
        guard ["true", "1", "false", "0"].contains(plainTCPText) else {
            throw Failure("invalid \(EngineAddress.allowPlainTCPVariable) \"\(plainTCPText)\": expected true or false")
        }
        allowPlainTCP = ["true", "1"].contains(plainTCPText)
    }

    /// The token from a file (trimmed: editors add a newline) or from `OCIMAN_TOKEN`. Set but
    /// empty is an error, never "no token": that would silently leave the service open.
    static func token(file: String?, variable: String?) throws -> String? {
        if let file {
            guard variable == nil else { throw Failure("set either OCIMAN_TOKEN or a token file (--token-file, OCIMAN_TOKEN_FILE), not both") }
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw Failure("cannot read the token file \(file): \(error.localizedDescription)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw Failure("the token file \(file) is empty") }
            guard !token.contains(where: \.isWhitespace) else { throw Failure("the token in \(file) contains whitespace") }
            return token
        }
        guard let variable else { return nil }
        let token = variable.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw Failure("OCIMAN_TOKEN is set but empty") }
        guard !token.contains(where: \.isWhitespace) else { throw Failure("OCIMAN_TOKEN contains whitespace") }
        return token
    }

    /// Where the server will listen, an inherited socket resolved to its address; refuses any
    /// address beyond this machine unless a token is configured (SPEC §7).
    func exposedAddress() throws -> ListenAddress {
        let address: ListenAddress
        do {
            address = try listen.resolved()
        } catch {
            throw Failure("cannot use the socket systemd passed: \(error)")
        }
        guard address.isLocalOnly || token != nil else {
            throw Failure(
                "refusing to listen on \(address) without a token: anyone who can reach it controls the container engine. "
                    + "Set OCIMAN_TOKEN or --token-file, or listen on 127.0.0.1, ::1 or a unix: socket")
        }
        return address
    }
}

/// Every option's default, stated once: `--help` and the settings read them from here.
enum Defaults {
    static let listen = "127.0.0.1:8420"
    static let socketMode = "600"
    static let logLevel = "info"
    static let logFormat = "text"
    static let podmanService = "auto"
    static let engineTimeout: Int = 30
    static let idleTimeout: Int = 60
    static let maxConnections: Int = 1024
    static let maxConnectionsPerClient: Int = 64
    static let headerTimeout: Int = 10
    static let maxBody: Int64 = 1 << 20
    static let maxTarBody: Int64 = 8 << 30
    static let shutdownGrace: Int = 10
    static let reapInterval: Int = 1
    static let requestTimeout: Int = 60
}
