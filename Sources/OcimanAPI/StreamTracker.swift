import OpenAPIRuntime
import Synchronization

/// Reports once how a streamed body ended: sent to the end, failed, or dropped because the client left.
final class StreamTracker: Sendable {
    enum Outcome: String, CustomStringConvertible {
        case completed, failed, abandoned
        var description: String { rawValue }
    }

    private struct State {
        var bytes = 0
        var done = false
    }
    private let state = Mutex(State())
    private let report: @Sendable (Outcome, Int) -> Void

    init(report: @escaping @Sendable (Outcome, Int) -> Void) { self.report = report }

    /// `body` wrapped so that `report` learns how it ended, when it is a stream (a body of unknown
    /// length); nil for a body of known length, which is sent whole once the handler returned.
    static func tracking(_ body: HTTPBody?, report: @escaping @Sendable (Outcome, Int) -> Void) -> HTTPBody? {
        guard let body, case .unknown = body.length else { return nil }
        return HTTPBody(
            TrackedBody(base: body, tracker: StreamTracker(report: report)),
            length: .unknown,
            iterationBehavior: body.iterationBehavior
        )
    }

    func sent(_ count: Int) { state.withLock { $0.bytes += count } }

    func finish(_ outcome: Outcome) {
        let bytes: Int? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            return state.bytes
        }
        if let bytes { report(outcome, bytes) }
    }

    // The transport drops the body without reading to the end when the client disconnects.
    deinit { finish(.abandoned) }
}

struct TrackedBody: AsyncSequence, Sendable {
    typealias Element = HTTPBody.ByteChunk
    let base: HTTPBody
    let tracker: StreamTracker

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), tracker: tracker) }

    struct Iterator: AsyncIteratorProtocol {
        var base: HTTPBody.AsyncIterator
        let tracker: StreamTracker

        // The transport cancels a request's task when its client leaves, and a cancelled producer
        // may end its stream early without an error: either way the stream was cut, not completed.
        mutating func next() async throws -> HTTPBody.ByteChunk? {
            do {
                guard let chunk = try await base.next() else {
                    tracker.finish(Task.isCancelled ? .abandoned : .completed)
                    return nil
                }
                tracker.sent(chunk.count)
                return chunk
            } catch {
                tracker.finish(Task.isCancelled ? .abandoned : .failed)
                throw error
            }
        }
    }
}
