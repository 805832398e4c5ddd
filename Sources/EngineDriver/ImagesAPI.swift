import Foundation

/// `GET /images/{name}/json` on both engines (Podman's compat answer has the same fields).
public struct EngineImage: Decodable, Sendable {
    public struct Config: Decodable, Sendable {
        public var labels: [String: String]?
        enum CodingKeys: String, CodingKey { case labels = "Labels" }
    }

    public var id: String
    public var repoTags: [String]?
    /// RFC 3339 with nanoseconds, as the engine stores it.
    public var created: String?
    public var size: Int64?
    public var config: Config?

    enum CodingKeys: String, CodingKey {
        case id = "Id"
        case repoTags = "RepoTags"
        case created = "Created"
        case size = "Size"
        case config = "Config"
    }
}

/// One entry of `GET /images/json`.
public struct EngineImageSummary: Decodable, Sendable {
    public var id: String
    /// Docker lists an untagged image as `["<none>:<none>"]`, Podman as `[]` or null.
    public var repoTags: [String]?
    /// Unix seconds (the list endpoint, unlike inspect, has no RFC 3339 time).
    public var created: Int64?
    public var size: Int64?
    public var labels: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id = "Id"
        case repoTags = "RepoTags"
        case created = "Created"
        case size = "Size"
        case labels = "Labels"
    }
}

/// One object of a build, pull or push progress stream (Docker's `jsonmessage.JSONMessage`;
/// Podman's compat endpoints send the same shape). Unknown fields are ignored, and an `aux`
/// that is not the expected object (BuildKit traces) decodes as nil rather than failing.
public struct EngineProgressMessage: Decodable, Sendable, Equatable {
    public struct ProgressDetail: Decodable, Sendable, Equatable {
        public var current: Int64?
        public var total: Int64?
    }

    public struct ErrorDetail: Decodable, Sendable, Equatable {
        public var code: Int?
        public var message: String?
    }

    /// Build results carry `ID`; push results carry `Tag`, `Digest` and `Size`.
    public struct Aux: Decodable, Sendable, Equatable {
        public var id: String?
        public var tag: String?
        public var digest: String?

        enum CodingKeys: String, CodingKey {
            case id = "ID"
            case tag = "Tag"
            case digest = "Digest"
        }
    }

    public var stream: String?
    public var status: String?
    public var id: String?
    public var progress: String?
    public var progressDetail: ProgressDetail?
    public var error: String?
    public var errorDetail: ErrorDetail?
    public var aux: Aux?

    enum CodingKeys: String, CodingKey {
        case stream, status, id, progress, progressDetail, error, errorDetail, aux
    }

    public init(
        stream: String? = nil, status: String? = nil, id: String? = nil, error: String? = nil,
        errorDetail: ErrorDetail? = nil, aux: Aux? = nil
    ) {
        self.stream = stream
        self.status = status
        self.id = id
        self.error = error
        self.errorDetail = errorDetail
        self.aux = aux
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        stream = try? container.decodeIfPresent(String.self, forKey: .stream)
        status = try? container.decodeIfPresent(String.self, forKey: .status)
        id = try? container.decodeIfPresent(String.self, forKey: .id)
        progress = try? container.decodeIfPresent(String.self, forKey: .progress)
        progressDetail = try? container.decodeIfPresent(ProgressDetail.self, forKey: .progressDetail)
        error = try? container.decodeIfPresent(String.self, forKey: .error)
        errorDetail = try? container.decodeIfPresent(ErrorDetail.self, forKey: .errorDetail)
        aux = try? container.decodeIfPresent(Aux.self, forKey: .aux)
    }

    /// Decodes one value cut out of a stream by `JSONStreamSplitter`; nil when it is not an object.
    public static func decode(_ bytes: [UInt8]) -> EngineProgressMessage? {
        try? EngineJSON.decoder.decode(EngineProgressMessage.self, from: Data(bytes))
    }

    /// The failure this object reports, if it is an error object (either spelling).
    public var failureMessage: String? {
        if let message = errorDetail?.message, !message.isEmpty { return message }
        if let error, !error.isEmpty { return error }
        return nil
    }
}

extension EngineClient {
    public func inspectImage(_ reference: String) async throws -> EngineImage {
        try await send(EngineRequest(.GET, "/images/\(EngineRequest.escape(reference))/json")).decode(EngineImage.self)
    }

    public func listImages() async throws -> [EngineImageSummary] {
        try await send(EngineRequest(.GET, "/images/json")).decode([EngineImageSummary].self)
    }

    /// Adds `repository:tag` to the image `reference` names.
    public func tagImage(_ reference: String, repository: String, tag: String) async throws {
        _ = try await send(
            EngineRequest(
                .POST, "/images/\(EngineRequest.escape(reference))/tag",
                query: [("repo", repository), ("tag", tag)]))
    }

    public func removeImage(_ reference: String, force: Bool) async throws {
        _ = try await send(
            EngineRequest(
                .DELETE, "/images/\(EngineRequest.escape(reference))",
                query: [("force", force ? "true" : "false")]))
    }

    /// `POST /images/create`: a progress stream. Docker reports registry failures as an error
    /// status before the stream, Podman as an error object inside a 200 stream.
    public func pullImage(_ image: String, tag: String?, auth: RegistryAuth? = nil, timeout: Duration? = nil) async throws
        -> EngineStream
    {
        var query = [("fromImage", image)]
        if let tag { query.append(("tag", tag)) }
        let headers = auth.map { [("X-Registry-Auth", $0.headerValue)] } ?? []
        return try await stream(EngineRequest(.POST, "/images/create", query: query, timeout: timeout, headers: headers))
    }

    /// `POST /images/{name}/push`. Docker refuses a push without `X-Registry-Auth`, so without
    /// `auth` an empty credential (`{}`) is sent: the engine then uses what it has configured.
    public func pushImage(_ repository: String, tag: String, auth: RegistryAuth? = nil, timeout: Duration? = nil) async throws
        -> EngineStream
    {
        try await stream(
            EngineRequest(
                .POST, "/images/\(EngineRequest.escape(repository))/push", query: [("tag", tag)],
                timeout: timeout, headers: [("X-Registry-Auth", auth?.headerValue ?? "e30=")]))
    }
}

/// One registry login as the Engine API takes it: JSON `{"username","password","serveraddress"}`,
/// base64url-encoded (with padding, as Go's `base64.URLEncoding`), in `X-Registry-Auth`.
/// Its description leaves the password out.
public struct RegistryAuth: Sendable, CustomStringConvertible {
    public var username: String
    public var password: String
    public var serverAddress: String

    public init(username: String, password: String, serverAddress: String) {
        self.username = username
        self.password = password
        self.serverAddress = serverAddress
    }

    public var description: String { "registry login of \(username) for \(serverAddress)" }

    var headerValue: String {
        struct Body: Encodable {
            var username: String
            var password: String
            var serveraddress: String
        }
        let json = (try? EngineJSON.encoder.encode(Body(username: username, password: password, serveraddress: serverAddress))) ?? Data()
        return json.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}
