import PulledStreams
import Dispatch
import Glibc
import Synchronization

/// Where a build context comes from.
public enum BuildSource: Sendable {
    /// A directory on this host; must resolve inside the configured context roots.
    case directory(path: String)
    /// Inline Dockerfile text; the context holds nothing else.
    case instructions(String)
    /// A tar archive the client is uploading, consumed as it arrives.
    case tar(UploadStream)
}

/// A request body still arriving from the client, pulled by exactly one consumer (the engine
/// upload or the hasher), one chunk at a time.
public final class UploadStream: @unchecked Sendable {
    // Unchecked: the iterator is only touched by the single consumer, strictly sequentially.
    private let pull: () async throws -> ArraySlice<UInt8>?

    public init<Body: AsyncSequence>(_ body: Body) where Body.Element == ArraySlice<UInt8> {
        var iterator = body.makeAsyncIterator()
        pull = { try await iterator.next() }
    }

    func next() async throws -> ArraySlice<UInt8>? { try await pull() }

    /// Reads and discards whatever the client still sends. The transport answers only once
    /// the request body is complete, so a refusal must let the rest of the upload in.
    public func drain() async {
        while (try? await pull()) ?? nil != nil {}
    }
}

/// The inputs of `POST /images/build` and `POST /hash` besides the source.
public struct BuildOptions: Sendable, Equatable {
    public var dockerfile: String?
    public var buildArguments: [String: String]
    public var labels: [String: String]
    public var target: String?
    /// Fixed reference for the image. At most one of `tag` and `name`.
    public var tag: String?
    /// Repository of the content-addressed reference `<name>:<hash>`.
    public var name: String?
    /// Skip the build when the reference (from `tag` or `name`) already exists.
    public var ifAbsent: Bool
    public var noCache: Bool
    public var pull: Bool

    public init(
        dockerfile: String? = nil, buildArguments: [String: String] = [:], labels: [String: String] = [:],
        target: String? = nil, tag: String? = nil, name: String? = nil, ifAbsent: Bool = false,
        noCache: Bool = false, pull: Bool = false
    ) {
        self.dockerfile = dockerfile
        self.buildArguments = buildArguments
        self.labels = labels
        self.target = target
        self.tag = tag
        self.name = name
        self.ifAbsent = ifAbsent
        self.noCache = noCache
        self.pull = pull
    }

    /// What the content hash covers (SPEC §5).
    var hashOptions: ContentHashOptions {
        ContentHashOptions(buildArguments: buildArguments, labels: labels, dockerfile: dockerfile, target: target)
    }

    /// Checks everything a client can get wrong, before any file or engine is touched.
    func validate(for source: BuildSource, building: Bool) throws(OcimanError) {
        do {
            try Validation.buildArguments(buildArguments)
            try Validation.labels(labels)
        } catch {
            throw OcimanError(error)
        }
        if let dockerfile {
            if case .instructions = source {
                throw .invalid(
                    field: "dockerfile",
                    message: "an inline-instructions context holds only its Dockerfile; dockerfile applies to path and tar contexts")
            }
            try Self.validateDockerfilePath(dockerfile)
        }
        if let target {
            guard !target.isEmpty, !target.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
                throw .invalid(field: "target", message: "build target must be a stage name without spaces or control characters")
            }
        }
        if let name {
            let reference = try Self.reference(name, field: "name")
            guard reference.tag == nil, reference.digest == nil else {
                throw .invalid(
                    field: "name",
                    message: "name is the repository of a content-addressed reference and takes no tag or digest; the tag is the content hash")
            }
        }
        guard building else { return }
        if let tag {
            guard name == nil else {
                throw .invalid(field: "tag", message: "give either tag (a fixed reference) or name (content-addressed), not both")
            }
            guard try Self.reference(tag, field: "tag").digest == nil else {
                throw .invalid(field: "tag", message: "an image cannot be tagged with a digest")
            }
        }
        if ifAbsent && tag == nil && name == nil {
            throw .invalid(field: "if_absent", message: "if_absent needs a tag or a name to look for")
        }
    }

    static func validateDockerfilePath(_ path: String) throws(OcimanError) {
        if path.isEmpty {
            throw .invalid(field: "dockerfile", message: "must not be empty")
        }
        if path.hasPrefix("/") {
            throw .invalid(field: "dockerfile", message: "must be a path inside the context, not absolute: \"\(path)\"")
        }
        if path.utf8.contains(0) {
            throw .invalid(field: "dockerfile", message: "must not contain NUL bytes")
        }
        if path.split(separator: "/").contains("..") {
            throw .invalid(field: "dockerfile", message: "must stay inside the context; \"..\" is not allowed: \"\(path)\"")
        }
    }

    static func reference(_ text: String, field: String) throws(OcimanError) -> ImageReference {
        do {
            return try Validation.imageReference(text, field: field)
        } catch {
            throw OcimanError(error)
        }
    }
}

/// One event of a build stream; exactly one `result` or `error` ends it.
public enum BuildEvent: Sendable, Equatable {
    case log(String)
    case result(BuildResult)
    case error(String)
}

public struct BuildResult: Sendable, Equatable {
    public var imageID: String
    /// The tag or the content-addressed reference; nil for an untagged build.
    public var reference: String?
    /// `sha256:<hex>` content hash, for content-addressed builds.
    public var digest: String?
    /// True when `if_absent` found the image and nothing was built.
    public var cached: Bool
}

/// What `POST /hash` answers.
public struct ContextHashResult: Sendable, Equatable {
    public var hash: ContentHash
    /// `<name>:<tag>` when a name was given.
    public var reference: String?
}

extension Runtime {
    /// Tar bodies are validated this far before the engine is contacted, so a small archive
    /// with a refused entry never reaches it at all.
    static let tarValidationWindow = 256 << 10

    // MARK: - Hash

    /// The content hash of a context (SPEC §5) without touching the engine.
    public func hashContext(_ source: BuildSource, _ options: BuildOptions) async throws(OcimanError)
        -> ContextHashResult
    {
        try await drainingUpload(of: source) { () async throws(OcimanError) in try await hashContextNow(source, options) }
    }

    private func hashContextNow(_ source: BuildSource, _ options: BuildOptions) async throws(OcimanError)
        -> ContextHashResult
    {
        try options.validate(for: source, building: false)
        let hash: ContentHash
        switch source {
        case .instructions(let text):
            hash = ContentHasher.hash(instructions: text, options: options.hashOptions)
        case .directory(let path):
            let root = try ContextRoots(contextRoots).resolve(path)
            hash = try await Self.hashDirectory(root, options.hashOptions)
        case .tar(let upload):
            let forwarder = try TarUploadForwarder(upload, hashing: true)
            while try await forwarder.next() != nil {}
            hash = try await forwarder.finishHash(options.hashOptions)
        }
        return ContextHashResult(hash: hash, reference: options.name.map { hash.reference(name: $0) })
    }

    /// Hashing a large tree takes seconds of CPU and blocking reads: it runs on a dispatch
    /// thread so the cooperative pool keeps serving other requests.
    static func hashDirectory(_ root: String, _ options: ContentHashOptions) async throws(OcimanError) -> ContentHash {
        let outcome = await offload { () throws(ContentHashError) -> ContentHash in
            try ContentHasher.hash(directory: root, options: options)
        }
        return try outcome.mapError(OcimanError.init(contextError:)).get()
    }

    // MARK: - Build

    /// Starts a build. Everything the client can get wrong (options, roots, a refused tar
    /// entry, a missing Dockerfile in a directory) throws before the stream starts; once it
    /// has, failures arrive as its terminal `error` event. A consumer that stops iterating
    /// cancels the engine build.
    public func build(_ source: BuildSource, _ options: BuildOptions) async throws(OcimanError)
        -> AsyncThrowingStream<BuildEvent, any Error>
    {
        try await drainingUpload(of: source) { () async throws(OcimanError) in try await buildNow(source, options) }
    }

    /// Runs `body`, then lets in whatever part of a tar upload it did not read (refusals,
    /// `if_absent` hits): the response can only go out once the request body is complete.
    private func drainingUpload<Value>(
        of source: BuildSource, _ body: () async throws(OcimanError) -> Value
    ) async throws(OcimanError) -> Value {
        guard case .tar(let upload) = source else { return try await body() }
        do {
            let value = try await body()
            await upload.drain()
            return value
        } catch {
            await upload.drain()
            throw error
        }
    }

    private func buildNow(_ source: BuildSource, _ options: BuildOptions) async throws(OcimanError)
        -> AsyncThrowingStream<BuildEvent, any Error>
    {
        try options.validate(for: source, building: true)
        var request = ImageBuildRequest(
            dockerfile: options.dockerfile, buildArguments: options.buildArguments, labels: options.labels,
            target: options.target, noCache: options.noCache, pull: options.pull)

        let context: AsyncThrowingStream<[UInt8], any Error>
        var hash: ContentHash?
        var forwarder: TarUploadForwarder?
        let directoryFailure = UploadFailure()
        switch source {
        case .instructions(let text):
            if options.name != nil { hash = ContentHasher.hash(instructions: text, options: options.hashOptions) }
            context = BuildContextArchive.instructions(text)
        case .directory(let path):
            let root = try ContextRoots(contextRoots).resolve(path)
            if let dockerfile = options.dockerfile { try Self.requireFile(dockerfile, in: root) }
            if options.name != nil { hash = try await Self.hashDirectory(root, options.hashOptions) }
            do {
                context = try BuildContextArchive.directory(root, failure: directoryFailure)
            } catch {
                throw OcimanError(contextError: error)
            }
        case .tar(let upload):
            let tarForwarder = try TarUploadForwarder(upload, hashing: options.name != nil)
            try await tarForwarder.prefetch(upTo: Self.tarValidationWindow)
            context = tarForwarder.stream()
            forwarder = tarForwarder
        }

        // A tar's hash is known only once it has been uploaded, so it is tagged afterwards.
        let reference = options.tag ?? hash.map { hash in hash.reference(name: options.name!) }
        if options.ifAbsent, let reference, let image = try await existingImage(reference) {
            return Self.single(.result(BuildResult(imageID: image.id, reference: reference, digest: hash?.digest, cached: true)))
        }
        if let reference { request.tags = [reference] }

        let progress: AsyncThrowingStream<BuildProgress, any Error>
        do {
            progress = try await engine.buildImage(request, context: context)
        } catch {
            if let refused = forwarder?.failure ?? directoryFailure.error { throw refused }
            switch error {
            case EngineFailure.unavailable, EngineFailure.timedOut, is OcimanError, is CancellationError:
                throw OcimanError(converting: error, context: "building")
            case let failure as EngineFailure:
                // The daemon refused the build itself (Docker answers 500 for a missing
                // Dockerfile or target where Podman streams an error): same shape for both.
                return Self.single(.error(failure.message.trimmingWhitespace))
            default:
                throw OcimanError(converting: error, context: "building")
            }
        }

        var tagAfterBuild: String?
        if let forwarder, let name = options.name {
            let tarHash = try await forwarder.finishHash(options.hashOptions)
            hash = tarHash
            let contentReference = tarHash.reference(name: name)
            if options.ifAbsent, let image = try await existingImage(contentReference) {
                // Dropping the response closes the connection: the engine abandons its build.
                return Self.single(
                    .result(BuildResult(imageID: image.id, reference: contentReference, digest: tarHash.digest, cached: true)))
            }
            tagAfterBuild = contentReference
        }
        return .decoding(
            progress,
            with: BuildEventDecoder(
                engine: engine, reference: tagAfterBuild ?? reference, digest: hash?.digest, tagAfterBuild: tagAfterBuild))
    }

    static func single(_ event: BuildEvent) -> AsyncThrowingStream<BuildEvent, any Error> {
        let (events, continuation) = AsyncThrowingStream.makeStream(of: BuildEvent.self)
        continuation.yield(event)
        continuation.finish()
        return events
    }

    /// The image a reference names, or nil when there is none.
    func existingImage(_ reference: String) async throws(OcimanError) -> ImageInfo? {
        do {
            return try await engine.inspectImage(reference)
        } catch EngineFailure.notFound {
            return nil
        } catch {
            throw OcimanError(converting: error, context: "image \(reference)")
        }
    }

    /// A Dockerfile the client named must exist in a directory context: a precise 400 rather
    /// than an engine error later.
    static func requireFile(_ relativePath: String, in root: String) throws(OcimanError) {
        var status = stat()
        let path = (root.hasSuffix("/") ? root : root + "/") + relativePath
        guard stat(path, &status) == 0, status.st_mode & 0o170000 == 0o100000 else {
            throw .invalid(field: "dockerfile", message: "\"\(relativePath)\" is not a file in the build context")
        }
    }
}

/// The engine's build progress to build events, ending with exactly one `result` or `error`:
/// a failure the engine reports wins over an image id it reported earlier.
struct BuildEventDecoder: PullDecoder {
    let engine: any ContainerEngine
    let reference: String?
    let digest: String?
    /// A tar's content-addressed reference, known only once the upload is complete.
    let tagAfterBuild: String?
    private var imageID: String?
    private var failure: String?

    init(engine: any ContainerEngine, reference: String?, digest: String?, tagAfterBuild: String?) {
        self.engine = engine
        self.reference = reference
        self.digest = digest
        self.tagAfterBuild = tagAfterBuild
    }

    mutating func feed(_ progress: BuildProgress) -> [BuildEvent] {
        switch progress {
        case .line(let line): return [.log(line)]
        case .built(let id): imageID = id
        case .failed(let message): failure = message
        }
        return []
    }

    func finish() async throws -> [BuildEvent] {
        if let failure { return [.error(failure)] }
        guard let imageID else {
            return [.error("the engine ended the build stream without an image id or an error")]
        }
        if let tagAfterBuild, let target = try? ImageReference(parsing: tagAfterBuild) {
            try await engine.tagImage(imageID, repository: target.repository, tag: target.tag ?? "latest")
        }
        return [.result(BuildResult(imageID: imageID, reference: reference, digest: digest, cached: false))]
    }

    func fail(_ error: any Error) -> [BuildEvent] {
        [.error(OcimanError(converting: error, context: "build").description)]
    }
}

/// Carries a client's tar upload to its consumer, checking every chunk with
/// `TarStreamValidator` before passing it on and, for content-addressed builds and `/hash`,
/// feeding it to `TarContentHasher` on the way.
///
/// A refused entry ends the upload: when it lies within the first `prefetch` window the engine
/// is never contacted; after that, the stream throws, the engine connection is closed
/// mid-body (the engine sees a broken upload and builds nothing) and `failure` holds the
/// 400 to answer, since the response has not started while the upload is still running.
struct TarUploadForwarder: Sendable {
    private final class State: Sendable {
        struct Inner: ~Copyable {
            var validator = TarStreamValidator()
            var hasher: TarContentHasher?
            var prefetched: [[UInt8]] = []
            var ended = false
        }
        let inner: Mutex<Inner>
        init(_ inner: consuming Inner) { self.inner = Mutex(inner) }
    }

    private let upload: UploadStream
    private let state: State
    private let refusal = UploadFailure()

    init(_ upload: UploadStream, hashing: Bool) throws(OcimanError) {
        self.upload = upload
        var inner = State.Inner()
        if hashing {
            do {
                inner.hasher = try TarContentHasher()
            } catch {
                throw OcimanError(contextError: error)
            }
        }
        state = State(inner)
    }

    /// Why the upload was refused, once it was.
    var failure: OcimanError? { refusal.error }

    /// Reads and checks up to `limit` bytes before anything is forwarded.
    func prefetch(upTo limit: Int) async throws(OcimanError) {
        var buffered = 0
        while buffered < limit, let chunk = try await next() {
            buffered += chunk.count
            state.inner.withLock { $0.prefetched.append(chunk) }
        }
    }

    /// The next checked chunk, or nil at the end of a complete archive.
    func next() async throws(OcimanError) -> [UInt8]? {
        let chunk: ArraySlice<UInt8>?
        do {
            chunk = try await upload.next()
        } catch {
            throw record(OcimanError(converting: error, context: "reading the tar body"))
        }
        let checked: Result<[UInt8]?, OcimanError> = state.inner.withLock { inner in
            do {
                guard let chunk else {
                    try inner.validator.finish()
                    inner.ended = true
                    return .success(nil)
                }
                try chunk.withUnsafeBytes { bytes in
                    try inner.validator.feed(bytes)
                    try inner.hasher?.feed(bytes)
                }
                return .success(Array(chunk))
            } catch {
                return .failure(OcimanError(contextError: error))
            }
        }
        switch checked {
        case .success(let bytes): return bytes
        case .failure(let error): throw record(error)
        }
    }

    /// The upload as the engine's request body: what `prefetch` read, then the rest.
    func stream() -> AsyncThrowingStream<[UInt8], any Error> {
        AsyncThrowingStream { [self] in
            if let first = state.inner.withLock({ $0.prefetched.isEmpty ? nil : $0.prefetched.removeFirst() }) {
                return first
            }
            return try await next()
        }
    }

    /// The content hash of the complete upload (reads the spooled file contents back).
    func finishHash(_ options: ContentHashOptions) async throws(OcimanError) -> ContentHash {
        let hasher = state.inner.withLock { inner -> TarContentHasher? in
            guard inner.ended else { return nil }
            return inner.hasher.take()
        }
        guard let hasher else {
            throw OcimanError.invalid(field: "body", message: "the tar body ended early")
        }
        let box = UncheckedBox(Optional(hasher))
        let outcome = await offload { () throws -> ContentHash in
            try box.value.take()!.finish(options: options)
        }
        return try outcome.mapError { OcimanError(contextError: $0) }.get()
    }

    private func record(_ error: OcimanError) -> OcimanError {
        refusal.record(error)
    }
}

/// Hands a value to code that runs later on one other thread, never concurrently.
final class UncheckedBox<Value: ~Copyable>: @unchecked Sendable {
    var value: Value
    init(_ value: consuming Value) { self.value = value }
}

/// Runs blocking work on a dispatch thread and waits for it without blocking the pool.
func offload<Value: Sendable, Failure: Error>(_ work: @escaping @Sendable () throws(Failure) -> Value) async
    -> Result<Value, Failure>
{
    await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(returning: Result { () throws(Failure) -> Value in try work() })
        }
    }
}

extension OcimanError {
    /// Filesystem and tar failures of build contexts, by who can fix them.
    init(contextError error: any Error) {
        switch error {
        case let error as OcimanError:
            self = error
        case let error as TarError:
            self = .invalid(field: "body", message: "refused build-context tar: \(error)")
        case let error as ContentHashError:
            switch error.kind {
            case .notFound, .notADirectory:
                self = .invalid(field: "context.path", message: error.description)
            case .unreadable where error.errno == EACCES || error.errno == EPERM:
                self = .forbidden(error.description)
            case .unreadable:
                self = .invalid(field: "context.path", message: error.description)
            case .changedDuringHashing:
                self = .conflict(error.description)
            case .spoolFailed:
                self = .unavailable(error.description)
            }
        default:
            self = .engineFailure("\(error)")
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        return String(text)
    }
}
