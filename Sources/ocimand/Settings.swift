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
    var maxBody: Int64
    var maxTarBody: Int64
    var shutdownGraceSeconds: Int
    var logLevel: Logger.Level
    var stateDirectory: String
    var reapIntervalSeconds: Int
    var logFormat: Observability.LogFormat

    init(command: Ocimand, environment: [String: String]) throws {
        func value(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        func number<T: FixedWidthInteger>(_ flag: T?, _ variable: String, default fallback: T, minimum: T = 0) throws -> T {
            if let flag {
                guard flag >= minimum else { throw Failure("\(variable) must be at least \(minimum)") }
                return flag
            }
            guard let text = environment[variable], !text.isEmpty else { return fallback }
            guard let parsed = T(text), parsed >= minimum else {
                throw Failure("invalid \(variable) \"\(text)\": expected a whole number ≥ \(minimum)")
            }
            return parsed
        }

        let listenText = value(command.listen, "OCIMAN_LISTEN") ?? "127.0.0.1:8420"
        do {
            listen = try ListenAddress(parsing: listenText)
        } catch {
            throw Failure("\(error)")
        }
        // An empty OCIMAN_BACKEND is invalid (SPEC §3), so it is passed through, not dropped.
        backendOverride = command.backend
        engineTimeoutSeconds = try number(command.engineTimeout, "OCIMAN_ENGINE_TIMEOUT", default: 30, minimum: 1)
        let rootsFromEnvironment = (environment["OCIMAN_CONTEXT_ROOTS"] ?? "").split(separator: ":").map(String.init)
        contextRoots = command.contextRoot.isEmpty ? rootsFromEnvironment : command.contextRoot
        let modeText = value(command.socketMode, "OCIMAN_SOCKET_MODE") ?? "600"
        guard let mode = mode_t(modeText, radix: 8), mode <= 0o777 else {
            throw Failure("invalid socket mode \"\(modeText)\": expected octal such as 600 or 660")
        }
        socketMode = mode
        idleTimeoutSeconds = try number(command.idleTimeout, "OCIMAN_IDLE_TIMEOUT", default: 60, minimum: 1)
        maxConnections = try number(command.maxConnections, "OCIMAN_MAX_CONNECTIONS", default: 1024, minimum: 1)
        maxBody = try number(command.maxBody, "OCIMAN_MAX_BODY", default: 1 << 20, minimum: 1)
        maxTarBody = try number(command.maxTarBody, "OCIMAN_MAX_TAR_BODY", default: 8 << 30, minimum: 1)
        shutdownGraceSeconds = try number(command.shutdownGrace, "OCIMAN_SHUTDOWN_GRACE", default: 10)
        let levelText = value(command.logLevel, "OCIMAN_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw Failure("invalid log level \"\(levelText)\": expected trace, debug, info, notice, warning, error or critical")
        }
        logLevel = level
        // Unprivileged users (rootless Podman) cannot write /var/lib.
        let userStateHome = value(nil, "XDG_STATE_HOME") ?? (environment["HOME"] ?? "") + "/.local/state"
        stateDirectory = value(command.stateDir, "OCIMAN_STATE_DIR") ?? (geteuid() == 0 ? "/var/lib/ociman" : userStateHome + "/ociman")
        reapIntervalSeconds = try number(command.reapInterval, "OCIMAN_REAP_INTERVAL", default: 1, minimum: 1)
        let formatText = value(command.logFormat, "OCIMAN_LOG_FORMAT") ?? "text"
        guard let format = Observability.LogFormat(rawValue: formatText) else {
            throw Failure("invalid log format \"\(formatText)\": expected text or json")
        }
        logFormat = format
    }
}
