import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func buildImage(_ input: Operations.BuildImage.Input) async throws -> Operations.BuildImage.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a JSON body") }
        let options = BuildOptions(
            dockerfile: request.dockerfile, buildArguments: request.buildArgs?.additionalProperties ?? [:],
            labels: request.labels?.additionalProperties ?? [:], target: request.target, tag: request.tag,
            name: request.name, ifAbsent: request.ifAbsent ?? false, noCache: request.noCache ?? false,
            pull: request.pull ?? false)
        let events = try await runtime.build(try Self.source(request.context), options)
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, BuildEventLines()))))
    }

    public func buildImageFromTar(_ input: Operations.BuildImageFromTar.Input) async throws -> Operations.BuildImageFromTar.Output {
        guard case .applicationXTar(let body) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a tar body") }
        let query = input.query
        let upload = UploadStream(body)
        let options = try await Self.tarOptions(upload) { () throws(OcimanError) in
            BuildOptions(
                dockerfile: query.dockerfile, buildArguments: try Self.pairs(query.buildArgs, field: "build_args"),
                labels: try Self.pairs(query.labels, field: "labels"), target: query.target, tag: query.tag,
                name: query.name, ifAbsent: query.ifAbsent ?? false, noCache: query.noCache ?? false,
                pull: query.pull ?? false)
        }
        let events = try await runtime.build(.tar(upload), options)
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, BuildEventLines()))))
    }

    public func hashContext(_ input: Operations.HashContext.Input) async throws -> Operations.HashContext.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a JSON body") }
        let options = BuildOptions(
            dockerfile: request.dockerfile, buildArguments: request.buildArgs?.additionalProperties ?? [:],
            labels: request.labels?.additionalProperties ?? [:], target: request.target, name: request.name)
        let result = try await runtime.hashContext(try Self.source(request.context), options)
        return .ok(.init(body: .json(.init(digest: result.hash.digest, tag: result.hash.tag, reference: result.reference))))
    }

    public func hashTarContext(_ input: Operations.HashTarContext.Input) async throws -> Operations.HashTarContext.Output {
        guard case .applicationXTar(let body) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a tar body") }
        let query = input.query
        let upload = UploadStream(body)
        let options = try await Self.tarOptions(upload) { () throws(OcimanError) in
            BuildOptions(
                dockerfile: query.dockerfile, buildArguments: try Self.pairs(query.buildArgs, field: "build_args"),
                labels: try Self.pairs(query.labels, field: "labels"), target: query.target, name: query.name)
        }
        let result = try await runtime.hashContext(.tar(upload), options)
        return .ok(.init(body: .json(.init(digest: result.hash.digest, tag: result.hash.tag, reference: result.reference))))
    }

    public func listImages(_ input: Operations.ListImages.Input) async throws -> Operations.ListImages.Output {
        let images = try await runtime.listImages(name: input.query.name)
        return .ok(.init(body: .json(try images.map(Components.Schemas.Image.init))))
    }

    public func inspectImage(_ input: Operations.InspectImage.Input) async throws -> Operations.InspectImage.Output {
        .ok(.init(body: .json(try .init(try await runtime.inspectImage(input.path.reference)))))
    }

    public func checkImage(_ input: Operations.CheckImage.Input) async throws -> Operations.CheckImage.Output {
        try await runtime.imageExists(input.path.reference) ? .ok(.init()) : .notFound(.init())
    }

    public func tagImage(_ input: Operations.TagImage.Input) async throws -> Operations.TagImage.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a JSON body") }
        try await runtime.tagImage(input.path.reference, target: request.target)
        return .created(.init())
    }

    public func removeImage(_ input: Operations.RemoveImage.Input) async throws -> Operations.RemoveImage.Output {
        try await runtime.removeImage(input.path.reference, force: input.query.force ?? false)
        return .noContent(.init())
    }

    public func pullImage(_ input: Operations.PullImage.Input) async throws -> Operations.PullImage.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a JSON body") }
        let events = try await runtime.pullImage(request.reference, login: request.credentials.map(Self.login))
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, TransferEventLines()))))
    }

    public func pushImage(_ input: Operations.PushImage.Input) async throws -> Operations.PushImage.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected a JSON body") }
        let events = try await runtime.pushImage(request.reference, login: request.credentials.map(Self.login))
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, TransferEventLines()))))
    }

    // MARK: - Input

    static func login(_ credentials: Components.Schemas.RegistryCredentials) -> RegistryLogin {
        RegistryLogin(username: credentials.username, password: credentials.password)
    }

    /// Query options of a tar upload. A refusal still lets the body in first: the transport
    /// sends the answer only once the request body is complete.
    private static func tarOptions(
        _ upload: UploadStream, _ parse: () throws(OcimanError) -> BuildOptions
    ) async throws(OcimanError) -> BuildOptions {
        do {
            return try parse()
        } catch {
            await upload.drain()
            throw error
        }
    }

    private static func source(_ context: Components.Schemas.BuildContext) throws(OcimanError) -> BuildSource {
        switch (context.path, context.instructions) {
        case ("", nil): throw .invalid(field: "context.path", message: "must not be empty")
        case (nil, ""): throw .invalid(field: "context.instructions", message: "must not be empty")
        case (let path?, nil): .directory(path: path)
        case (nil, let instructions?): .instructions(instructions)
        default: throw .invalid(field: "context", message: "give exactly one of context.path and context.instructions")
        }
    }

    /// Repeated `KEY=VALUE` query parameters; a key given twice is ambiguous, hence refused.
    private static func pairs(_ items: [String]?, field: String) throws(OcimanError) -> [String: String] {
        var result: [String: String] = [:]
        for item in items ?? [] {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw .invalid(field: field, message: "expected KEY=VALUE, got \"\(item)\"")
            }
            let key = String(item[..<equals])
            guard result.updateValue(String(item[item.index(after: equals)...]), forKey: key) == nil else {
                throw .invalid(field: "\(field).\(key)", message: "given more than once")
            }
        }
        return result
    }
}

extension Components.Schemas.Image {
    init(_ image: ImageInfo) throws(OcimanError) {
        self.init(
            id: image.id, references: image.references, labels: .init(additionalProperties: image.labels),
            created: try EngineTime.required(image.created, "the creation time of image \(image.id)"), size: Int(image.size))
    }
}

struct BuildEventLines: NDJSONTranslator {
    func lines(for event: BuildEvent) -> [Components.Schemas.BuildEvent] {
        switch event {
        case .log(let line):
            [.log(.init(_type: .log, line: line))]
        case .result(let result):
            [.result(.init(
                _type: .result, imageId: result.imageID, reference: result.reference, digest: result.digest,
                cached: result.cached))]
        case .error(let message):
            [error(message)]
        }
    }

    func finish() -> [Components.Schemas.BuildEvent] { [] }

    func error(_ message: String) -> Components.Schemas.BuildEvent { .error(.init(_type: .error, message: message)) }
}

struct TransferEventLines: NDJSONTranslator {
    func lines(for event: ImageTransferEvent) -> [Components.Schemas.ImageTransferEvent] {
        switch event {
        case .status(let status, let id, let current, let total):
            [.status(.init(_type: .status, status: status, id: id, current: current.map(Int.init), total: total.map(Int.init)))]
        case .result(let reference, let imageID, let digest):
            [.result(.init(_type: .result, reference: reference, imageId: imageID, digest: digest))]
        case .error(let message, let code):
            [.error(.init(_type: .error, message: message, code: code.map(Components.Schemas.ErrorEvent.CodePayload.init)))]
        }
    }

    func finish() -> [Components.Schemas.ImageTransferEvent] { [] }

    func error(_ message: String) -> Components.Schemas.ImageTransferEvent { .error(.init(_type: .error, message: message)) }
}

extension Components.Schemas.ErrorEvent.CodePayload {
    init(_ code: RegistryErrorCode) {
        switch code {
        case .notFound: self = .notFound
        case .unauthorized: self = .unauthorized
        case .unreachable: self = .unreachable
        }
    }
}
