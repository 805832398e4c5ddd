/// One step of a pulled stream: turns what the stream below yields into what this stream
/// yields, keeping whatever state the translation needs between chunks.
///
/// Every layer between an engine socket and a client (frames, log lines, build and pull
/// progress, exec events, ndjson lines) is one of these, run by `AsyncThrowingStream.decoding`,
/// so no layer has a task of its own pushing into a buffer: nothing is read below until the
/// consumer above asks, and a client that stops reading stops the engine.
public protocol PullDecoder {
    associatedtype Input
    associatedtype Output

    /// What one input becomes; may be nothing (a partial line or frame is kept for later).
    mutating func feed(_ input: Input) throws -> [Output]
    /// What follows the last input (a held-back partial line, an exit code, a result).
    mutating func finish() async throws -> [Output]
    /// The stream below, or `feed`, failed: what to end with instead. Throwing ends the
    /// stream with that error; returning outputs ends it cleanly after them.
    mutating func fail(_ error: any Error) async throws -> [Output]
}

extension PullDecoder {
    public mutating func finish() async throws -> [Output] { [] }
    public mutating func fail(_ error: any Error) async throws -> [Output] { throw error }
}

extension AsyncThrowingStream where Failure == any Error {
    /// `upstream` translated by `decoder`, pulled one input at a time as the consumer asks.
    /// Dropping the stream drops `upstream` (and the decoder), which is how a consumer that
    /// leaves early cancels the work below it.
    public static func decoding<Upstream: AsyncSequence, Decoder: PullDecoder>(
        _ upstream: Upstream, with decoder: Decoder
    ) -> AsyncThrowingStream<Element, any Error>
    where Decoder.Input == Upstream.Element, Decoder.Output == Element {
        let state = PulledDecoding(upstream.makeAsyncIterator(), decoder)
        return AsyncThrowingStream { try await state.next() }
    }
}

/// The state of one `decoding` stream. AsyncThrowingStream calls its producer strictly one
/// call at a time, so the unsynchronised fields are never touched concurrently.
private final class PulledDecoding<Iterator: AsyncIteratorProtocol, Decoder: PullDecoder>: @unchecked Sendable
where Decoder.Input == Iterator.Element {
    private var iterator: Iterator
    private var decoder: Decoder
    private var pending: [Decoder.Output] = []
    private var nextPending = 0
    private var ended = false

    init(_ iterator: Iterator, _ decoder: Decoder) {
        self.iterator = iterator
        self.decoder = decoder
    }

    func next() async throws -> Decoder.Output? {
        while true {
            if nextPending < pending.count {
                defer { nextPending += 1 }
                return pending[nextPending]
            }
            pending.removeAll(keepingCapacity: true)
            nextPending = 0
            if ended { return nil }
            do {
                if let input = try await iterator.next() {
                    pending = try decoder.feed(input)
                } else {
                    ended = true
                    pending = try await decoder.finish()
                }
            } catch {
                ended = true
                pending = try await decoder.fail(error)
            }
        }
    }
}
