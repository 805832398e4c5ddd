import PulledStreams
import Dispatch
import Glibc
import Synchronization

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
