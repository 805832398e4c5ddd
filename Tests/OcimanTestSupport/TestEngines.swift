import Foundation

/// Engines the integration suites run against: `OCIMAN_TEST_ENGINES` (comma-separated), set by
/// `make test`; by default whichever engine sockets answer. Besides `docker` and `podman` (the
/// root engines on their unix sockets) there are variants that reach the same engines the way
/// users do elsewhere, all made by scripts/setup-engines.sh (scripts/setup/):
/// - `docker-tls`: dockerd's TCP listener with mutual TLS (`DOCKER_HOST=tcp://`,
///   `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`);
/// - `docker-ssh`: `DOCKER_HOST=ssh://root@ociman-engine`, the test sshd on 127.0.0.1:2222 as
///   root's ssh configuration names it;
/// - `podman-rootless`: ocimand run as the unprivileged `ociman-rootless`, which finds its own
///   rootless Podman socket.
public enum TestEngines {
    public static let dockerSocket = "/var/run/docker.sock"
    public static let podmanSocket = "/run/podman/podman.sock"
    /// The files and names scripts/setup/ makes.
    public static let testPKI = "/etc/ociman-test/pki"
    public static let sshAlias = "ociman-engine"
    public static let rootlessUser = "ociman-rootless"

    public static var available: [String] {
        if let list = ProcessInfo.processInfo.environment["OCIMAN_TEST_ENGINES"], !list.isEmpty {
            return list.split(separator: ",").map(String.init)
        }
        var engines: [String] = []
        if FileManager.default.fileExists(atPath: dockerSocket) { engines.append("docker") }
        if FileManager.default.fileExists(atPath: podmanSocket) { engines.append("podman") }
        return engines
    }

    /// `docker` or `podman`: the engine behind a variant.
    public static func backend(for engine: String) -> String {
        engine.hasPrefix("podman") ? "podman" : "docker"
    }

    /// The engine's own socket, for checking and cleaning up straight on the engine.
    public static func socket(for engine: String) -> String {
        switch engine {
        case "podman-rootless": rootlessAccount.runtimeDirectory + "/podman/podman.sock"
        case _ where backend(for: engine) == "podman": podmanSocket
        default: dockerSocket
        }
    }

    /// What ocimand's environment needs to reach the variant's engine.
    public static func environment(for engine: String) -> [String: String] {
        switch engine {
        case "docker-tls":
            ["DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": testPKI + "/docker-client"]
        case "docker-ssh":
            ["DOCKER_HOST": "ssh://root@\(sshAlias)"]
        case "podman-rootless":
            [
                "HOME": rootlessAccount.home, "USER": rootlessUser, "XDG_RUNTIME_DIR": rootlessAccount.runtimeDirectory,
                "XDG_STATE_HOME": rootlessAccount.home + "/.local/state", "PATH": "/usr/local/bin:/usr/bin:/bin",
            ]
        default:
            [:]
        }
    }

    /// The account ocimand runs as for the variant; nil for the test's own (root).
    public static func account(for engine: String) -> Account? {
        engine == "podman-rootless" ? rootlessAccount : nil
    }

    public struct Account: Sendable {
        public let name: String
        public let uid: uid_t
        public let gid: gid_t
        public let home: String
        public var runtimeDirectory: String { "/run/user/\(uid)" }
    }

    static let rootlessAccount: Account = {
        guard let entry = getpwnam(rootlessUser) else {
            return Account(name: rootlessUser, uid: 0, gid: 0, home: "/nonexistent")
        }
        return Account(
            name: rootlessUser, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid, home: String(cString: entry.pointee.pw_dir))
    }()

    /// The base image every test builds on (imported by scripts/setup-engines.sh).
    public static let baseImage = "localhost/busybox:test"
    /// PostgreSQL 15 built from Debian's packages (scripts/setup/postgres-image.sh); its `/bin/sh` is dash.
    public static let postgresImage = "localhost/ociman-postgres:15"
}
