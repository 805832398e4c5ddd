/// Credentials for one pull or push, passed to the engine with that request only: never
/// stored, never logged. Printing one (in a log line or an error) shows the user alone.
public struct RegistryCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var username: String
    public var password: String
    /// The registry the credentials are for (`host[:port]`, from the image reference).
    public var serverAddress: String

    public init(username: String, password: String, serverAddress: String) {
        self.username = username
        self.password = password
        self.serverAddress = serverAddress
    }

    public var description: String { "credentials of \(username) for \(serverAddress)" }
    public var debugDescription: String { description }
}

/// A user and password as a client sends them, before they are tied to a registry.
public struct RegistryLogin: Sendable, CustomStringConvertible {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public var description: String { "login of \(username)" }

    /// For the registry `reference` names (Docker Hub when it names none), once the lengths
    /// are within the contract's bounds (the message never shows the password).
    func credentials(for reference: ImageReference) throws(OcimanError) -> RegistryCredentials {
        guard (1...1024).contains(username.utf8.count) else {
            throw .invalid(field: "credentials.username", message: "username must be 1 to 1024 bytes")
        }
        guard (1...65536).contains(password.utf8.count) else {
            throw .invalid(field: "credentials.password", message: "password must be 1 to 65536 bytes")
        }
        return RegistryCredentials(username: username, password: password, serverAddress: reference.domain ?? "docker.io")
    }
}
