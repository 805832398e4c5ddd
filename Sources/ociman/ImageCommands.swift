import ArgumentParser
import Foundation
import OcimanClient

/// What `build` and `hash` share: the context directory and what goes into the image.
struct BuildInputs: ParsableArguments {
    @Option(name: .shortAndLong, help: "Dockerfile path within the context (default Dockerfile).") var file: String?
    @Option(name: .long, help: "Build argument KEY=VALUE (repeatable).") var buildArg: [String] = []
    @Option(name: .long, help: "Image label KEY=VALUE (repeatable).") var label: [String] = []
    @Option(name: .long, help: "Build stage to stop at.") var target: String?
    @Option(name: .long, help: "Repository for the content-addressed reference NAME:HASH.") var name: String?
    @Argument(help: "Context directory; ocimand reads it, so it must lie under one of its --context-root.")
    var context: String

    var contextPath: String {
        URL(fileURLWithPath: context, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
            .standardizedFileURL.path
    }
}

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build an image from a directory.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var inputs: BuildInputs
    @Option(name: .shortAndLong, help: "Fixed reference for the result (not with --name).") var tag: String?
    @Flag(name: .long, help: "Skip the build when the reference exists already.") var ifAbsent = false
    @Flag(name: .long, help: "Do not use the build cache.") var noCache = false
    @Flag(name: .long, help: "Pull newer base images.") var pull = false

    func run() async throws {
        let request = Components.Schemas.BuildRequest(
            context: .init(path: inputs.contextPath), dockerfile: inputs.file,
            buildArgs: inputs.buildArg.isEmpty ? nil : .init(additionalProperties: try keyValues(inputs.buildArg, option: "--build-arg")),
            labels: inputs.label.isEmpty ? nil : .init(additionalProperties: try keyValues(inputs.label, option: "--label")),
            target: inputs.target, tag: tag, name: inputs.name, ifAbsent: ifAbsent, noCache: noCache, pull: pull)
        let progress = Progress()
        for try await event in try await connection.client().buildEvents(request) {
            switch event {
            case .log(let log): if !output.json { progress.update(id: nil, log.line) }
            case .error(let failure): throw CommandFailure(failure.message)
            case .result(let result):
                if output.json { return try Output.json(result) }
                Output.print(result.reference ?? result.imageId)
                return
            }
        }
        throw CommandFailure("the build ended without a result")
    }
}

struct Hash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The content hash a build of a directory would be tagged with.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var inputs: BuildInputs

    func run() async throws {
        let request = Components.Schemas.HashRequest(
            context: .init(path: inputs.contextPath),
            buildArgs: inputs.buildArg.isEmpty ? nil : .init(additionalProperties: try keyValues(inputs.buildArg, option: "--build-arg")),
            labels: inputs.label.isEmpty ? nil : .init(additionalProperties: try keyValues(inputs.label, option: "--label")),
            dockerfile: inputs.file, target: inputs.target, name: inputs.name)
        let result = try await connection.client().hashContext(body: .json(request)).ok.body.json
        if output.json { return try Output.json(result) }
        Output.print(result.reference ?? result.digest)
    }
}

struct Images: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List images.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let images = try await connection.client().listImages().ok.body.json
        if output.json { return try Output.json(images) }
        Output.table(
            ["REFERENCE", "IMAGE ID", "SIZE"],
            images.flatMap { image in
                (image.references.isEmpty ? ["<none>"] : image.references).map {
                    [$0, Output.shortID(image.id), ByteCountFormatter.string(fromByteCount: Int64(image.size), countStyle: .file)]
                }
            })
    }
}

struct Tag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Give an image another reference.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The image.") var source: String
    @Argument(help: "The new reference.") var target: String

    func run() async throws {
        _ = try await connection.client().tagImage(path: .init(reference: source), body: .json(.init(target: target))).created
    }
}

struct Rmi: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove images.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Remove it even when containers use it.") var force = false
    @Argument(help: "Image references or ids.") var images: [String]

    func run() async throws {
        let client = try connection.client()
        for image in images {
            _ = try await client.removeImage(path: .init(reference: image), query: .init(force: force)).noContent
            Output.print(image)
        }
    }
}

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pull an image.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Image reference.") var reference: String

    func run() async throws {
        try await Self.transfer(try await connection.client().pullEvents(reference: reference))
    }

    static func transfer(_ events: Client.EventStream<Components.Schemas.ImageTransferEvent>) async throws {
        let progress = Progress()
        for try await event in events {
            switch event {
            case .status(let status):
                let amount = status.current.map { current in status.total.map { " \(current)/\($0)" } ?? " \(current)" } ?? ""
                progress.update(id: status.id, status.status + amount)
            case .error(let failure): throw CommandFailure(failure.message)
            case .result(let result):
                Output.print(result.digest.map { "\(result.reference)@\($0)" } ?? result.reference)
                return
            }
        }
        throw CommandFailure("the transfer ended without a result")
    }
}

struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Push an image.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Image reference.") var reference: String

    func run() async throws {
        try await Pull.transfer(try await connection.client().pushEvents(reference: reference))
    }
}
