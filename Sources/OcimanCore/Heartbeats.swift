import Synchronization

/// What an event stream yields: an event, or a sign of life while nothing happens.
public enum HeartbeatItem<Element: Sendable>: Sendable {
    case element(Element)
    case heartbeat
}

extension AsyncThrowingStream where Failure == any Error {
    /// `upstream`, with a `.heartbeat` whenever it stays quiet for `interval`. Still pulled: at
    /// most one read of `upstream` is in flight, started when the consumer asks, and a heartbeat
    /// leaves that read running for the next ask. Dropping the stream cancels the read.
    public static func withHeartbeats<Inner: Sendable>(
        _ upstream: AsyncThrowingStream<Inner, any Error>, every interval: Duration
    ) -> AsyncThrowingStream<HeartbeatItem<Inner>, any Error> where Element == HeartbeatItem<Inner> {
        let reader = HeartbeatReader(upstream, interval: interval)
        return AsyncThrowingStream { try await reader.next() }
    }
}

/// The state of one `withHeartbeats` stream; its producer is called one call at a time.
private final class HeartbeatReader<Inner: Sendable>: @unchecked Sendable {
    private let upstream: Upstream
    private let interval: Duration
    private let mailbox = Mailbox<Result<Inner?, any Error>>()
    private var read: Task<Void, Never>?

    /// Touched only by the one read task in flight.
    private final class Upstream: @unchecked Sendable {
        var iterator: AsyncThrowingStream<Inner, any Error>.AsyncIterator
        init(_ stream: AsyncThrowingStream<Inner, any Error>) { iterator = stream.makeAsyncIterator() }
    }

    init(_ stream: AsyncThrowingStream<Inner, any Error>, interval: Duration) {
        upstream = Upstream(stream)
        self.interval = interval
    }

    deinit { read?.cancel() }

    func next() async throws -> HeartbeatItem<Inner>? {
        if read == nil {
            read = Task { [upstream, mailbox] in
                do { mailbox.deliver(.success(try await upstream.iterator.next())) } catch { mailbox.deliver(.failure(error)) }
            }
        }
        guard let result = await mailbox.take(within: interval) else {
            // Quiet for `interval`, or the consumer left.
            try Task.checkCancellation()
            return .heartbeat
        }
        read = nil
        return try result.get().map(HeartbeatItem.element)
    }
}

/// One value handed from a producer task to a consumer that waits for it only so long.
private final class Mailbox<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case delivered(Value)
        case waiting(CheckedContinuation<Value?, Never>, take: Int)
    }

    private let state = Mutex(State.empty)
    /// Numbers each `take`, so a late timer gives up only the wait it was started for.
    private let takes = Atomic<Int>(0)

    func deliver(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            if case .waiting(let continuation, _) = state {
                state = .empty
                return continuation
            }
            state = .delivered(value)
            return nil
        }
        waiter?.resume(returning: value)
    }

    /// The delivered value, or nil when none comes within `timeout` (or the caller is cancelled).
    func take(within timeout: Duration) async -> Value? {
        let take = takes.add(1, ordering: .relaxed).newValue
        let timer = Task { [self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            giveUp(take)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value?? in
                    if case .delivered(let value) = state {
                        state = .empty
                        return .some(value)
                    }
                    state = .waiting(continuation, take: take)
                    return .none
                }
                if case .some(let value) = ready { continuation.resume(returning: value) }
            }
        } onCancel: {
            giveUp(take)
        }
    }

    private func giveUp(_ take: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            guard case .waiting(let continuation, take) = state else { return nil }
            state = .empty
            return continuation
        }
        waiter?.resume(returning: nil)
    }
}
