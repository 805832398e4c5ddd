import PulledStreams
import Dispatch
import Glibc
import Synchronization

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
