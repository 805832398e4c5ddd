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

    /// Docker marks rootless mode as a security option `name=rootless`; Podman reports
    /// `host.security.rootless` on its own `/info`.
    public func isRootless(podman: Bool) async throws -> Bool {
        if podman {
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
        struct Info: Decodable {
            var securityOptions: [String]?
            enum CodingKeys: String, CodingKey { case securityOptions = "SecurityOptions" }
        }
        let info = try await send(EngineRequest(.GET, "/info")).decode(Info.self)
        return (info.securityOptions ?? []).contains { option in
            option.split(separator: ",").contains("name=rootless")
        }
    }

    public func inspectNetwork(_ name: String) async throws -> EngineNetwork {
        try await send(EngineRequest(.GET, "/networks/\(EngineRequest.escape(name))")).decode(EngineNetwork.self)
    }
}
