/// Options of `POST /build` (the classic builder; both engines accept these on the compat API).
public struct EngineBuildOptions: Sendable, Equatable {
    public var tags: [String]
    /// Path of the Dockerfile inside the context; nil means `Dockerfile`.
    public var dockerfile: String?
    public var buildArguments: [String: String]
    public var labels: [String: String]
    public var target: String?
    public var noCache: Bool
    public var pull: Bool
    /// The cgroup the build's step containers run under.
    public var cgroupParent: String?

    public init(
        tags: [String] = [], dockerfile: String? = nil, buildArguments: [String: String] = [:],
        labels: [String: String] = [:], target: String? = nil, noCache: Bool = false, pull: Bool = false,
        cgroupParent: String? = nil
    ) {
        self.tags = tags
        self.dockerfile = dockerfile
        self.buildArguments = buildArguments
        self.labels = labels
        self.target = target
        self.noCache = noCache
        self.pull = pull
        self.cgroupParent = cgroupParent
    }

    /// `rm` and `forcerm` are always on: intermediate containers go away after a failed step
    /// too, not only after successful ones.
    var query: [(String, String)] {
        get throws {
            var query: [(String, String)] = tags.map { ("t", $0) }
            if let dockerfile { query.append(("dockerfile", dockerfile)) }
            if !buildArguments.isEmpty {
                query.append(("buildargs", String(decoding: try EngineJSON.encoder.encode(buildArguments), as: UTF8.self)))
            }
            if !labels.isEmpty {
                query.append(("labels", String(decoding: try EngineJSON.encoder.encode(labels), as: UTF8.self)))
            }
            if let target { query.append(("target", target)) }
            if noCache { query.append(("nocache", "1")) }
            if pull { query.append(("pull", "1")) }
            if let cgroupParent { query.append(("cgroupparent", cgroupParent)) }
            query.append(("rm", "1"))
            query.append(("forcerm", "1"))
            return query
        }
    }
}

extension EngineClient {
    /// Uploads `context` (a tar stream, chunk by chunk) and returns once the engine answers;
    /// the body is the engine's progress stream (`EngineProgressMessage` objects that do not
    /// align with chunks). A failed build still answers 200: the last object is the error.
    /// Stopping iteration closes the connection, which makes the engine cancel the build.
    public func build(
        _ options: EngineBuildOptions,
        context: AsyncThrowingStream<[UInt8], any Error>,
        timeout: Duration
    ) async throws -> EngineStream {
        try await stream(
            EngineRequest(
                .POST, "/build", query: try options.query,
                body: .stream(contentType: "application/x-tar", context), timeout: timeout))
    }
}
