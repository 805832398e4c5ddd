import PulledStreams
import Dispatch
import Glibc
import Synchronization

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
