import Foundation
import OcimanCore

/// Where ocimand will talk to its engine, decided at startup (SPEC §3).
public struct BackendSelection: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        /// An engine endpoint that answered `/_ping`.
        case address(EngineAddress)
        /// No Podman socket answered but the binary exists: ocimand runs its own service.
        case privatePodmanService

        public static func socket(_ path: String) -> Endpoint { .address(.unix(path)) }
    }

    public var kind: BackendKind
    public var endpoint: Endpoint
}

/// Everything selection reads from the outside world, so the rules are testable as a table.
public struct BackendEnvironment: Sendable {
    public var variables: [String: String]
    /// Contents of `~/.config/ociman.toml`, nil when the file does not exist.
    public var configFile: String?
    public var podmanBinaryExists: Bool
    /// nil when the engine at this address answers `GET /_ping`, else why not ("" when there
    /// is nothing to add to the address, e.g. no socket there).
    public var probe: @Sendable (EngineAddress) async -> String?

    public init(
        variables: [String: String],
        configFile: String?,
        podmanBinaryExists: Bool,
        probe: @escaping @Sendable (EngineAddress) async -> String?
    ) {
        self.variables = variables
        self.configFile = configFile
        self.podmanBinaryExists = podmanBinaryExists
        self.probe = probe
    }
}

public enum BackendSelectionError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidOverride(String)
    case invalidConfig(String)
    case unsupportedHost(variable: String, value: String)
    case plainTextTCP(variable: String, value: String)
    case sshWithoutSocket(variable: String, value: String)
    case unreachable(BackendKind, tried: [String])
    case noEngine(tried: [String])

    public var description: String {
        switch self {
        case .invalidOverride(let value):
            "invalid OCIMAN_BACKEND \"\(value)\": expected \"docker\" or \"podman\""
        case .invalidConfig(let message):
            "invalid ~/.config/ociman.toml: \(message)"
        case .unsupportedHost(let variable, let value):
            "\(variable)=\"\(value)\" is not supported: expected unix://PATH, tcp://HOST[:PORT] or "
                + (variable == "CONTAINER_HOST" ? "ssh://[USER@]HOST[:PORT]/PATH/TO/podman.sock" : "ssh://[USER@]HOST[:PORT]")
        case .plainTextTCP(let variable, let value):
            "\(variable)=\"\(value)\" would send root-equivalent engine access in plain text beyond loopback: "
                + (variable == "DOCKER_HOST" ? "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or " : "")
                + "allow it with --allow-plain-tcp (\(EngineAddress.allowPlainTCPVariable)=true)"
        case .sshWithoutSocket(let variable, let value):
            "\(variable)=\"\(value)\" names no socket: Podman over ssh needs ssh://[USER@]HOST[:PORT]/PATH/TO/podman.sock"
        case .unreachable(let kind, let tried):
            "OCIMAN_BACKEND=\(kind.rawValue) but no \(kind == .docker ? "Docker" : "Podman") engine answers "
                + "(tried \(tried.joined(separator: ", ")))"
        case .noEngine(let tried):
            "no container engine found (tried \(tried.joined(separator: ", "))); "
                + "start dockerd or install podman, or set OCIMAN_BACKEND"
        }
    }
}

public enum BackendSelector {
    /// SPEC §3: the override wins; otherwise the config file's preference, then Docker before
    /// Podman (Podman first when preferred).
    public static func select(_ environment: BackendEnvironment) async throws -> BackendSelection {
        if let override = environment.variables["OCIMAN_BACKEND"] {
            guard let kind = BackendKind(rawValue: override) else {
                throw BackendSelectionError.invalidOverride(override)
            }
            var tried: [String] = []
            if let selection = try await find(kind, environment, tried: &tried) { return selection }
            throw BackendSelectionError.unreachable(kind, tried: tried)
        }
        let preference = try parseConfig(environment.configFile)
        let order: [BackendKind] = preference == .podman ? [.podman, .docker] : [.docker, .podman]
        var tried: [String] = []
        for kind in order {
            if let selection = try await find(kind, environment, tried: &tried) { return selection }
        }
        throw BackendSelectionError.noEngine(tried: tried)
    }

    /// Candidate endpoints in the order SPEC §3.3 gives.
    public static func candidates(_ kind: BackendKind, _ variables: [String: String]) throws -> [EngineAddress] {
        switch kind {
        case .docker:
            if let host = variables["DOCKER_HOST"], !host.isEmpty {
                return [try EngineAddress.parse(host, variable: "DOCKER_HOST", kind: .docker, variables: variables)]
            }
            return [.unix("/var/run/docker.sock")]
        case .podman:
            var addresses: [EngineAddress] = []
            if let host = variables["CONTAINER_HOST"], !host.isEmpty {
                addresses.append(try EngineAddress.parse(host, variable: "CONTAINER_HOST", kind: .podman, variables: variables))
            }
            if let runtimeDirectory = variables["XDG_RUNTIME_DIR"], !runtimeDirectory.isEmpty {
                addresses.append(.unix(runtimeDirectory + "/podman/podman.sock"))
            }
            addresses.append(.unix("/run/podman/podman.sock"))
            return addresses
        }
    }

    private static func find(
        _ kind: BackendKind,
        _ environment: BackendEnvironment,
        tried: inout [String]
    ) async throws -> BackendSelection? {
        // `OCIMAN_PODMAN_SERVICE=private`: ocimand runs its own service even when a socket answers
        // (isolation from a shared service; also how tests reach the supervised child).
        if kind == .podman, environment.variables["OCIMAN_PODMAN_SERVICE"] == "private" {
            if environment.podmanBinaryExists { return BackendSelection(kind: .podman, endpoint: .privatePodmanService) }
            tried.append("podman binary (not installed; OCIMAN_PODMAN_SERVICE=private)")
            return nil
        }
        for address in try candidates(kind, environment.variables) {
            guard let reason = await environment.probe(address) else {
                return BackendSelection(kind: kind, endpoint: .address(address))
            }
            tried.append(reason.isEmpty ? address.description : "\(address) (\(reason))")
        }
        if kind == .podman {
            if environment.podmanBinaryExists { return BackendSelection(kind: .podman, endpoint: .privatePodmanService) }
            tried.append("podman binary (not installed)")
        }
        return nil
    }

    /// The file has one key, `default_backend`; anything else is an error rather than a
    /// silently ignored typo.
    static func parseConfig(_ text: String?) throws -> BackendKind? {
        guard let text else { return nil }
        var preference: BackendKind?
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else {
                throw BackendSelectionError.invalidConfig("line \(number + 1): expected key = \"value\"")
            }
            guard parts[0] == "default_backend" else {
                throw BackendSelectionError.invalidConfig("line \(number + 1): unknown key \"\(parts[0])\"")
            }
            let value = parts[1]
            guard value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") else {
                throw BackendSelectionError.invalidConfig("line \(number + 1): default_backend must be a quoted string")
            }
            switch value.dropFirst().dropLast() {
            case "auto": preference = nil
            case "docker": preference = .docker
            case "podman": preference = .podman
            default:
                throw BackendSelectionError.invalidConfig(
                    "line \(number + 1): default_backend must be \"auto\", \"docker\" or \"podman\"")
            }
        }
        return preference
    }
}
