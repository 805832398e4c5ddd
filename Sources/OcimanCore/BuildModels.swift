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
