import PulledStreams

/// Which output stream of a container or exec process a piece of output came from.
public enum StandardStream: String, Sendable, Hashable {
    case stdout
    case stderr
}

public struct LogOptions: Sendable, Equatable {
    public var follow: Bool
    /// Only the last N lines (≥ 0) of existing output; nil for all.
    public var tail: Int?
    /// Only output at or after this Unix time in seconds (≥ 0).
    public var since: Int?
    public var timestamps: Bool

    public init(follow: Bool = false, tail: Int? = nil, since: Int? = nil, timestamps: Bool = false) {
        self.follow = follow
        self.tail = tail
        self.since = since
        self.timestamps = timestamps
    }
}

/// One line of container output, without its line terminator.
public struct LogLine: Sendable, Equatable {
    public var stream: StandardStream
    /// Invalid UTF-8 is replaced with U+FFFD.
    public var text: String
    /// The engine's RFC 3339 time for the line, when timestamps were requested.
    public var timestamp: String?

    public init(stream: StandardStream, text: String, timestamp: String? = nil) {
        self.stream = stream
        self.text = text
        self.timestamp = timestamp
    }
}

extension Runtime {
    /// The container's output as lines. Resolves the container first (404 before any stream
    /// starts); the stream then ends when the engine's output ends — for `follow`, when the
    /// container stops. A consumer that stops iterating cancels the engine request.
    public func logs(_ id: String, _ options: LogOptions) async throws(OcimanError) -> AsyncThrowingStream<LogLine, any Error> {
        try OcimanError.checkBounds(options.tail, IntegerBounds.logTail, field: "tail")
        try OcimanError.checkBounds(options.since, IntegerBounds.logSince, field: "since")
        let lines = try await OcimanError.wrap("container \(id)") { try await engine.containerLogs(id, options) }
        return .decoding(lines, with: FailureConversion(context: "logs of container \(id)"))
    }

    /// The container's last `limit` output lines (both streams, in the engine's order), for
    /// problem documents of timed-out waits and for matching readiness patterns.
    public func recentLogLines(_ id: String, limit: Int = 50) async throws(OcimanError) -> [String] {
        let stream = try await logs(id, LogOptions(tail: max(0, limit)))
        return try await OcimanError.wrap("logs of container \(id)") {
            var lines: [String] = []
            for try await line in stream { lines.append(line.text) }
            return Array(lines.suffix(limit))
        }
    }
}

/// Passes a stream's elements on and converts the error that ends it, with context.
struct FailureConversion<Element>: PullDecoder {
    let context: String

    func feed(_ element: Element) -> [Element] { [element] }

    func fail(_ error: any Error) throws -> [Element] {
        throw OcimanError(converting: error, context: context)
    }
}
