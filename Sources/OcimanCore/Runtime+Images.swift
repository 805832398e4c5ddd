import PulledStreams

/// An image as `GET /images` and `GET /images/{reference}` describe it.
public struct ImageInfo: Sendable, Equatable {
    public var id: String
    /// Repository tags; empty for an untagged image.
    public var references: [String]
    public var labels: [String: String]
    /// RFC 3339.
    public var created: String
    public var size: Int64

    public init(id: String, references: [String], labels: [String: String], created: String, size: Int64) {
        self.id = id
        self.references = references
        self.labels = labels
        self.created = created
        self.size = size
    }
}

/// One event of a pull or push stream; exactly one `result` or `error` ends it.
public enum ImageTransferEvent: Sendable, Equatable {
    case status(String, id: String?, current: Int64?, total: Int64?)
    case result(reference: String, imageID: String?, digest: String?)
    case error(String, code: RegistryErrorCode?)
}

/// Why a registry operation failed, as far as a client can act on it.
public enum RegistryErrorCode: String, Sendable, Equatable {
    /// The registry does not know the repository, tag or manifest.
    case notFound = "not_found"
    /// Credentials are missing or do not grant access.
    case unauthorized
    /// The registry could not be reached (DNS, connection refused, TLS, timeouts).
    case unreachable

    /// Classifies an engine's pull or push failure.
    ///
    /// The engine's HTTP status decides where there is one (Docker answers 404 for an unknown
    /// repository). Otherwise the engines only pass on text: Podman sends every registry
    /// failure as an error object inside a 200 stream, and Docker answers 500 for some. The
    /// text is then matched against the OCI distribution error codes the engines render
    /// verbatim (`MANIFEST_UNKNOWN` → "manifest unknown", `NAME_UNKNOWN` → "name unknown",
    /// `UNAUTHORIZED`, `DENIED`) and Go's network error texts — protocol vocabulary, not
    /// free-form wording.
    public static func classify(status: Int?, message: String) -> RegistryErrorCode? {
        if status == 404 { return .notFound }
        let text = message.lowercased()
        let notFound = ["manifest unknown", "name unknown", "repository does not exist", "not found: manifest"]
        if notFound.contains(where: text.contains) { return .notFound }
        let unauthorized = [
            "unauthorized", "authentication required", "requested access to the resource is denied", "denied:",
            "no basic auth credentials",
        ]
        if unauthorized.contains(where: text.contains) { return .unauthorized }
        let unreachable = [
            "connection refused", "no such host", "i/o timeout", "network is unreachable", "no route to host",
            "connection reset", "tls:", "x509:", "server gave http response to https client",
            "pinging container registry", "dial tcp", "dial udp", "context deadline exceeded",
        ]
        if unreachable.contains(where: text.contains) { return .unreachable }
        return nil
    }
}

extension Runtime {
    // MARK: - Inspect, list, tag, remove

    /// Images, optionally only those with a reference in repository `name` (registry-insensitive
    /// like the ociman library: `busybox` also matches `docker.io/library/busybox` and
    /// `localhost/busybox`). A tag or digest in `name` must match too.
    public func listImages(name: String? = nil) async throws(OcimanError) -> [ImageInfo] {
        let filter = try name.map { text throws(OcimanError) in try BuildOptions.reference(text, field: "name") }
        let images = try await OcimanError.wrap("listing images") { try await engine.listImages() }
        guard let filter else { return images }
        return images.filter { image in image.references.contains { Self.matches(filter, $0) } }
    }

    public func inspectImage(_ reference: String) async throws(OcimanError) -> ImageInfo {
        _ = try BuildOptions.reference(reference, field: "reference")
        return try await OcimanError.wrap("image \(reference)") { try await engine.inspectImage(reference) }
    }

    public func imageExists(_ reference: String) async throws(OcimanError) -> Bool {
        _ = try BuildOptions.reference(reference, field: "reference")
        return try await existingImage(reference) != nil
    }

    /// Adds `target` to the image `reference` names; a target without a tag gets `latest`.
    public func tagImage(_ reference: String, target: String) async throws(OcimanError) {
        _ = try BuildOptions.reference(reference, field: "reference")
        let parsed = try BuildOptions.reference(target, field: "target")
        guard parsed.digest == nil else {
            throw .invalid(field: "target", message: "an image cannot be tagged with a digest: \"\(target)\"")
        }
        try await OcimanError.wrap("image \(reference)") {
            try await engine.tagImage(reference, repository: parsed.repository, tag: parsed.tag ?? "latest")
        }
    }

    /// Removes the reference (and the image once nothing else names it). Without `force`, an
    /// image a container uses is a conflict (409) on both engines.
    public func removeImage(_ reference: String, force: Bool) async throws(OcimanError) {
        _ = try BuildOptions.reference(reference, field: "reference")
        try await OcimanError.wrap("image \(reference)") { try await engine.removeImage(reference, force: force) }
    }

    // MARK: - Pull and push

    /// Pulls `reference` (tag `latest` when it has neither tag nor digest, rather than every
    /// tag as the engine API would). Registry failures arrive as the terminal error event with
    /// a `code`; only an unreachable engine fails before the stream. `login` is for the
    /// reference's registry, for this request only.
    public func pullImage(_ reference: String, login: RegistryLogin? = nil) async throws(OcimanError)
        -> AsyncThrowingStream<ImageTransferEvent, any Error>
    {
        let parsed = try BuildOptions.reference(reference, field: "reference")
        let credentials = try login?.credentials(for: parsed)
        let tag = parsed.digest ?? parsed.tag ?? "latest"
        let pulled = parsed.digest.map { "\(parsed.repository)@\($0)" } ?? "\(parsed.repository):\(tag)"
        return try await transfer(pulled, operation: "pulling") { [engine] in
            try await engine.pullImage(repository: parsed.repository, tag: tag, credentials: credentials)
        } result: { [engine] digest in
            let image = try? await engine.inspectImage(pulled)
            return .result(reference: pulled, imageID: image?.id, digest: digest)
        }
    }

    /// Pushes `reference` (tag `latest` when it has none). 404 before the stream when the
    /// image does not exist locally.
    public func pushImage(_ reference: String, login: RegistryLogin? = nil) async throws(OcimanError)
        -> AsyncThrowingStream<ImageTransferEvent, any Error>
    {
        let parsed = try BuildOptions.reference(reference, field: "reference")
        let credentials = try login?.credentials(for: parsed)
        guard parsed.digest == nil else {
            throw .invalid(field: "reference", message: "push takes a tag, not a digest: \"\(reference)\"")
        }
        let tag = parsed.tag ?? "latest"
        let pushed = "\(parsed.repository):\(tag)"
        guard let image = try await existingImage(pushed) else {
            throw .notFound("no image \(pushed) to push")
        }
        return try await transfer(pushed, operation: "pushing") { [engine] in
            try await engine.pushImage(repository: parsed.repository, tag: tag, credentials: credentials)
        } result: { digest in
            .result(reference: pushed, imageID: image.id, digest: digest)
        }
    }

    private func transfer(
        _ reference: String,
        operation: String,
        start: @escaping @Sendable () async throws -> AsyncThrowingStream<TransferProgress, any Error>,
        result: @escaping @Sendable (_ digest: String?) async -> ImageTransferEvent
    ) async throws(OcimanError) -> AsyncThrowingStream<ImageTransferEvent, any Error> {
        let progress: AsyncThrowingStream<TransferProgress, any Error>
        do {
            progress = try await start()
        } catch let failure as EngineFailure {
            switch failure {
            case .unavailable, .timedOut:
                throw OcimanError(failure, context: "\(operation) \(reference)")
            case .notFound(let message):
                return Self.single(.error(message, code: .notFound))
            case .failed(let status, let message):
                return Self.single(.error(message, code: RegistryErrorCode.classify(status: status, message: message)))
            case .conflict(let message), .rejected(let message):
                return Self.single(.error(message, code: RegistryErrorCode.classify(status: nil, message: message)))
            }
        } catch {
            throw OcimanError(converting: error, context: "\(operation) \(reference)")
        }

        return .decoding(progress, with: TransferEventDecoder(context: "\(operation) \(reference)", result: result))
    }

    static func single(_ event: ImageTransferEvent) -> AsyncThrowingStream<ImageTransferEvent, any Error> {
        let (events, continuation) = AsyncThrowingStream.makeStream(of: ImageTransferEvent.self)
        continuation.yield(event)
        continuation.finish()
        return events
    }

    // MARK: - Helpers

    static func matches(_ filter: ImageReference, _ candidate: String) -> Bool {
        guard filter.matchesRepository(candidate), let parsed = try? ImageReference(parsing: candidate) else {
            return false
        }
        if let tag = filter.tag, parsed.tag != tag { return false }
        if let digest = filter.digest, parsed.digest != digest { return false }
        return true
    }
}

/// A pull's or push's progress to events, ending with the result or the registry's error.
struct TransferEventDecoder: PullDecoder {
    let context: String
    let result: @Sendable (_ digest: String?) async -> ImageTransferEvent
    private var failure: String?
    private var digest: String?

    init(context: String, result: @escaping @Sendable (_ digest: String?) async -> ImageTransferEvent) {
        self.context = context
        self.result = result
    }

    mutating func feed(_ progress: TransferProgress) -> [ImageTransferEvent] {
        switch progress {
        case .status(let text, let id, let current, let total): return [.status(text, id: id, current: current, total: total)]
        case .digest(let found): digest = found
        case .failed(let message): failure = message
        }
        return []
    }

    func finish() async throws -> [ImageTransferEvent] {
        if let failure { return [.error(failure, code: RegistryErrorCode.classify(status: nil, message: failure))] }
        return [await result(digest)]
    }

    func fail(_ error: any Error) -> [ImageTransferEvent] {
        [.error(OcimanError(converting: error, context: context).description, code: nil)]
    }
}
