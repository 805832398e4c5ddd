import NIOCore

/// The bytes an engine sends on one connection, for one consumer that pulls them.
///
/// The channel reads from its socket only while the consumer keeps up: once a few buffers wait
/// unconsumed, reads stop, the kernel's receive window fills and the engine blocks on its write,
/// so a client that stops reading pauses the container's output instead of growing memory.
/// A consumer that stops iterating before the end closes the connection, which is how an
/// engine learns that a build, log follow, pull or exec was abandoned.
public struct EngineBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ReadGate.Demand
    >

    private let producer: Producer
    private let gate: ReadGate.Handle

    fileprivate init(producer: Producer, gate: ReadGate.Handle) {
        self.producer = producer
        self.gate = gate
    }

    /// Ends the body early from outside its consumer (a deadline): the connection is closed and
    /// a waiting `next()` fails.
    public func close() { gate.closeUnlessEnded() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate var base: Producer.AsyncIterator
        public mutating func next() async throws -> ByteBuffer? { try await base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: producer.makeAsyncIterator()) }

    /// A body whose request is sent only when it is first pulled: a response head that the
    /// engine may hold back until the first output (Podman's log follow) then never delays
    /// the caller's own answer.
    public static func deferred(_ start: @escaping @Sendable () async throws -> EngineBody) -> DeferredEngineBody {
        DeferredEngineBody(start: start)
    }

    /// Reads the rest (error bodies and small answers), refusing more than `limit` bytes.
    public func collect(limit: Int = 16 << 20) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in self {
            bytes.append(contentsOf: chunk.readableBytesView)
            if bytes.count > limit { throw EngineError.protocolViolation("response larger than \(limit) bytes") }
        }
        return bytes
    }
}

/// Couples a channel's reads to the demand of one `EngineBody`. Lives on the channel's event
/// loop: the channel handler that receives the bytes calls `deliver`, `finish` and `mayRead`;
/// the consumer's demand arrives through `Demand`, which hops onto the loop.
final class ReadGate {
    /// Buffers (each at most one socket read, up to 64 KiB) waiting for the consumer before reads
    /// stop, and how far the consumer must drain before they resume. Four rather than eight:
    /// 50 stalled exec streams peaked 10 MB lower (88–90 against 99–101 MB, debug build), and a
    /// 300 MB exec stream read at full speed took as long (6.0–6.4 s either way).
    static let highWatermark = 4
    static let lowWatermark = 1

    private let channel: any Channel
    private let source: EngineBody.Producer.Source
    /// The consumer has enough: reads are held until it asks for more.
    private var paused = false
    /// A read the channel asked for while paused, issued once the consumer wants more.
    private var readHeld = false
    private(set) var ended = false

    private init(channel: any Channel, source: EngineBody.Producer.Source) {
        self.channel = channel
        self.source = source
    }

    /// A gate and the body it feeds; call on the channel's event loop.
    static func make(for channel: any Channel) -> (ReadGate, EngineBody) {
        let handle = Handle(eventLoop: channel.eventLoop)
        let made = EngineBody.Producer.makeSequence(
            backPressureStrategy: .init(lowWatermark: lowWatermark, highWatermark: highWatermark),
            finishOnDeinit: false,
            delegate: Demand(handle: handle)
        )
        let gate = ReadGate(channel: channel, source: made.source)
        handle.gate = gate
        return (gate, EngineBody(producer: made.sequence, gate: handle))
    }

    func deliver(_ bytes: ByteBuffer) {
        guard !ended else { return }
        if source.yield(bytes) == .stopProducing { paused = true }
    }

    /// The body is complete (or failed). Returns whether a read was held back, which the
    /// handler must now issue: the connection may serve another request and must notice the
    /// engine closing it.
    @discardableResult
    func finish(throwing error: (any Error)? = nil) -> Bool {
        guard !ended else { return false }
        ended = true
        if let error { source.finish(error) } else { source.finish() }
        defer { readHeld = false }
        return readHeld
    }

    /// Called from the handler's `read(context:)`: false holds the read back.
    func mayRead() -> Bool {
        guard paused, !ended else { return true }
        readHeld = true
        return false
    }

    fileprivate func consumerWantsMore() {
        paused = false
        guard readHeld else { return }
        readHeld = false
        channel.read()
    }

    /// The consumer left before the end: only closing the connection tells the engine.
    fileprivate func consumerLeft() {
        guard !ended else { return }
        finish(throwing: CancellationError())
        channel.close(promise: nil)
    }

    /// Reaches the gate from the consumer's side. Weak, so a finished gate (whose handler has
    /// moved on to another request) is never touched again.
    final class Handle: @unchecked Sendable {
        // Unchecked: `gate` is set once on the loop before the body escapes, and read only on the loop.
        let eventLoop: any EventLoop
        weak var gate: ReadGate?

        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        func onLoop(_ work: @escaping (ReadGate) -> Void) {
            eventLoop.execute { [self] in
                if let gate { work(gate) }
            }
        }

        func closeUnlessEnded() { onLoop { $0.consumerLeft() } }
    }

    struct Demand: NIOAsyncSequenceProducerDelegate {
        let handle: Handle
        func produceMore() { handle.onLoop { $0.consumerWantsMore() } }
        func didTerminate() { handle.onLoop { $0.consumerLeft() } }
    }
}

/// See `EngineBody.deferred`.
public struct DeferredEngineBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let start: @Sendable () async throws -> EngineBody

    public struct AsyncIterator: AsyncIteratorProtocol {
        let start: @Sendable () async throws -> EngineBody
        var body: EngineBody.AsyncIterator?

        public mutating func next() async throws -> ByteBuffer? {
            if body == nil { body = try await start().makeAsyncIterator() }
            return try await body?.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(start: start) }
}
