import Synchronization

/// The tar stream of a directory context, for `EngineRequest` bodies. Opening happens here, so
/// a missing or unreadable root fails before any engine call.
enum BuildContextArchive {
    /// `failure` keeps what went wrong mid-walk: the engine client only reports that the
    /// upload broke off, and the client deserves the file that could not be read.
    static func directory(_ root: String, failure: UploadFailure) throws(ContentHashError)
        -> AsyncThrowingStream<[UInt8], any Error>
    {
        let producer = Mutex<DirectoryTarProducer>(try DirectoryTarProducer(root: root))
        return AsyncThrowingStream {
            do {
                return try producer.withLock { producer throws(ContentHashError) in try producer.next() }
            } catch {
                throw failure.record(OcimanError(contextError: error))
            }
        }
    }

    /// Inline instructions: an archive with the Dockerfile as its only member.
    static func instructions(_ text: String) -> AsyncThrowingStream<[UInt8], any Error> {
        let archive = TarWriter.singleFileArchive(name: ContentHashOptions.defaultDockerfile, contents: Array(text.utf8))
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        continuation.yield(archive)
        continuation.finish()
        return stream
    }
}

/// The first reason an upload to the engine was stopped on our side.
final class UploadFailure: Sendable {
    private let first = Mutex<OcimanError?>(nil)

    var error: OcimanError? { first.withLock { $0 } }

    func record(_ error: OcimanError) -> OcimanError {
        first.withLock { if $0 == nil { $0 = error } }
        return error
    }
}
