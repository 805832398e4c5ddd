/// `/version`, `/info` and network inspection: what `GET /backend` reports.
public struct EngineVersion: Decodable, Sendable {
    public var version: String
    public var apiVersion: String?

    enum CodingKeys: String, CodingKey {
        case version = "Version"
        case apiVersion = "ApiVersion"
    }
}

public struct NetworkIPAMConfig: Decodable, Sendable {
    public var subnet: String?
    public var gateway: String?

    enum CodingKeys: String, CodingKey {
        case subnet = "Subnet"
        case gateway = "Gateway"
    }
}

public struct EngineNetwork: Decodable, Sendable {
    public struct IPAM: Decodable, Sendable {
        public var config: [NetworkIPAMConfig]?
        enum CodingKeys: String, CodingKey { case config = "Config" }
    }
    public var name: String
    public var ipam: IPAM?

    enum CodingKeys: String, CodingKey {
        case name = "Name"
        case ipam = "IPAM"
    }
}

extension EngineClient {
    public func version() async throws -> EngineVersion {
        try await send(EngineRequest(.GET, "/version")).decode(EngineVersion.self)
    }

    /// The security options of `/info`; Docker lists rootless mode there as `name=rootless`.
    public func securityOptions() async throws -> [String] {
        struct Info: Decodable {
            var securityOptions: [String]?
            enum CodingKeys: String, CodingKey { case securityOptions = "SecurityOptions" }
        }
        return try await send(EngineRequest(.GET, "/info")).decode(Info.self).securityOptions ?? []
    }

    /// Podman's own `/info` reports rootless mode as `host.security.rootless`.
    public func libpodRootless() async throws -> Bool {
        struct Info: Decodable {
            struct Host: Decodable {
                struct Security: Decodable { var rootless: Bool? }
                var security: Security?
            }
            var host: Host?
        }
        let info = try await send(EngineRequest(.GET, "/info", api: .libpod)).decode(Info.self)
        return info.host?.security?.rootless ?? false
    }

    public func inspectNetwork(_ name: String) async throws -> EngineNetwork {
        try await send(EngineRequest(.GET, "/networks/\(EngineRequest.escape(name))")).decode(EngineNetwork.self)
    }
}
