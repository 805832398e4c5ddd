import Synchronization

/// FIFO of byte chunks with a running byte count; the shared buffer of both stream directions.
struct ChunkQueue {
    private var chunks: [ArraySlice<UInt8>] = []
    private var head = 0
    private(set) var byteCount = 0

    var isEmpty: Bool { byteCount == 0 }

    mutating func append(_ chunk: ArraySlice<UInt8>) {
        guard !chunk.isEmpty else { return }
        chunks.append(chunk)
        byteCount += chunk.count
    }

    mutating func popFirst() -> ArraySlice<UInt8>? {
        guard head < chunks.count else { return nil }
        let chunk = chunks[head]
        head += 1
        byteCount -= chunk.count
        compactIfDrained()
        return chunk
    }

    /// Copies up to `capacity` bytes into `destination`, splitting a chunk where needed.
    mutating func drain(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        while copied < destination.count, head < chunks.count {
            let chunk = chunks[head]
            let take = min(chunk.count, destination.count - copied)
            chunk.withUnsafeBytes { source in
                destination.baseAddress!.advanced(by: copied)
                    .copyMemory(from: source.baseAddress!, byteCount: take)
            }
            copied += take
            if take == chunk.count {
                head += 1
            } else {
                chunks[head] = chunk.dropFirst(take)
            }
        }
        byteCount -= copied
        compactIfDrained()
        return copied
    }

    private mutating func compactIfDrained() {
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 {
            chunks.removeFirst(head)
            head = 0
        }
    }
}

public enum TransportStreamError: Error, CustomStringConvertible {
    /// The client went away or the request was aborted before the body was complete.
    case clientDisconnected

    public var description: String { "client disconnected" }
}

/// The request body: libmicrohttpd's thread pushes, the handler task pulls.
///
/// libmicrohttpd cannot wait, so flow control is done by suspending the connection when the
/// buffer passes `highWater` and resuming it once the handler has drained below `lowWater`.
/// That keeps a 1 GiB upload at a few MiB of memory.
final class RequestBodyStream: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>

    private struct State {
        var queue = ChunkQueue()
        var finished = false
        var failure: (any Error)?
        var waiter: CheckedContinuation<Void, Never>?
        var connectionSuspended = false
        /// The handler answered without reading everything: drop the rest as it arrives.
        var abandoned = false
    }

    private let state = Mutex(State())
    private let highWater: Int
    private let lowWater: Int
    // Both run with the lock held, so a resume can never overtake the suspend it undoes.
    private let suspendConnection: @Sendable () -> Void
    private let resumeConnection: @Sendable () -> Void

    init(
        highWater: Int = 1 << 20,
        suspendConnection: @escaping @Sendable () -> Void,
        resumeConnection: @escaping @Sendable () -> Void
    ) {
        self.highWater = highWater
        self.lowWater = highWater / 4
        self.suspendConnection = suspendConnection
        self.resumeConnection = resumeConnection
    }

    /// Called on the connection's thread with bytes libmicrohttpd owns; they are copied.
    func push(_ bytes: UnsafeRawBufferPointer) {
        let chunk = ArraySlice(bytes.bindMemory(to: UInt8.self))
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if state.abandoned { return nil }
            state.queue.append(chunk)
            if state.queue.byteCount > highWater && !state.connectionSuspended {
                state.connectionSuspended = true
                suspendConnection()
            }
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// The handler has answered and will not read on. Without this, a connection paused for
    /// backpressure would wait forever for a reader that is gone, and the answer (which
    /// 0.9.75 can only send after the whole body) would never leave.
    func abandon() {
        state.withLock { state in
            state.abandoned = true
            state.queue = ChunkQueue()
            if state.connectionSuspended {
                state.connectionSuspended = false
                resumeConnection()
            }
        }
    }

    func finish(throwing error: (any Error)? = nil) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if !state.finished {
                state.finished = true
                state.failure = error
            }
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    fileprivate func next() async throws -> ArraySlice<UInt8>? {
        while true {
            enum Step { case chunk(ArraySlice<UInt8>), end, fail(any Error), wait }
            let step: Step = state.withLock { state in
                if let chunk = state.queue.popFirst() {
                    if state.connectionSuspended && state.queue.byteCount < lowWater {
                        state.connectionSuspended = false
                        resumeConnection()
                    }
                    return .chunk(chunk)
                }
                if state.finished {
                    if let failure = state.failure { return .fail(failure) }
                    return .end
                }
                if state.connectionSuspended {
                    // Drained while suspended: let more body in before waiting for it.
                    state.connectionSuspended = false
                    resumeConnection()
                }
                return .wait
            }
            switch step {
            case .chunk(let chunk): return chunk
            case .end: return nil
            case .fail(let error): throw error
            case .wait:
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state in
                        if !state.queue.isEmpty || state.finished { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let stream: RequestBodyStream
        mutating func next() async throws -> ArraySlice<UInt8>? { try await stream.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}

/// A streamed response body: the handler task pushes, libmicrohttpd's content reader pulls.
///
/// When the reader finds nothing to send it suspends the connection (returning 0 without
/// suspending would spin a core); the next push resumes it. The producer waits while more
/// than `highWater` bytes are queued, so a slow client slows the engine stream down instead
/// of growing memory.
final class ResponseStream: Sendable {
    enum ReadResult {
        case bytes(Int)
        case suspended
        case end
        case failed
    }

    private struct State {
        var queue = ChunkQueue()
        var finished = false
        var closed = false
        var readerSuspended = false
        var producerWaiter: CheckedContinuation<Void, any Error>?
    }

    private let state = Mutex(State())
    private let highWater: Int
    private let suspendConnection: @Sendable () -> Void
    private let resumeConnection: @Sendable () -> Void

    init(
        highWater: Int = 256 << 10,
        suspendConnection: @escaping @Sendable () -> Void,
        resumeConnection: @escaping @Sendable () -> Void
    ) {
        self.highWater = highWater
        self.suspendConnection = suspendConnection
        self.resumeConnection = resumeConnection
    }

    /// Producer side. Throws once the client is gone, which ends the handler's stream.
    func write(_ chunk: ArraySlice<UInt8>) async throws {
        let mustWait: Bool = try state.withLock { state in
            if state.closed { throw TransportStreamError.clientDisconnected }
            state.queue.append(chunk)
            wakeReader(&state)
            return state.queue.byteCount > highWater
        }
        guard mustWait else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Bool, any Error> = state.withLock { state in
                if state.closed { return .failure(TransportStreamError.clientDisconnected) }
                if state.queue.byteCount <= highWater { return .success(true) }
                state.producerWaiter = continuation
                return .success(false)
            }
            switch outcome {
            case .success(true): continuation.resume()
            case .success(false): break
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
    }

    /// Producer side: no more bytes.
    func finish() {
        state.withLock { state in
            state.finished = true
            wakeReader(&state)
        }
    }

    /// The client is gone or the response was destroyed: fail the producer, wake the reader.
    func close() {
        let waiter: CheckedContinuation<Void, any Error>? = state.withLock { state in
            state.closed = true
            wakeReader(&state)
            let waiter = state.producerWaiter
            state.producerWaiter = nil
            return waiter
        }
        waiter?.resume(throwing: TransportStreamError.clientDisconnected)
    }

    /// Reader side, on the connection's thread.
    func read(into destination: UnsafeMutableRawBufferPointer) -> ReadResult {
        let (result, waiter): (ReadResult, CheckedContinuation<Void, any Error>?) = state.withLock { state in
            if state.closed { return (.failed, nil) }
            if !state.queue.isEmpty {
                let count = state.queue.drain(into: destination)
                var waiter: CheckedContinuation<Void, any Error>?
                if state.queue.byteCount <= highWater / 2 {
                    waiter = state.producerWaiter
                    state.producerWaiter = nil
                }
                return (.bytes(count), waiter)
            }
            if state.finished { return (.end, nil) }
            state.readerSuspended = true
            suspendConnection()
            return (.suspended, nil)
        }
        waiter?.resume()
        return result
    }

    private func wakeReader(_ state: inout State) {
        if state.readerSuspended {
            state.readerSuspended = false
            resumeConnection()
        }
    }
}
