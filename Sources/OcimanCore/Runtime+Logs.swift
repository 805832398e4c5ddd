import PulledStreams
import EngineDriver
import NIOCore

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
        let mode = try await OcimanError.wrap("container \(id)") { try await engine.containerProcessState(id) }
        // Podman sends the head of a follow only with the first output, which may be much later.
        let headTimeout: Duration? = options.follow ? .seconds(366 * 24 * 3600) : nil
        // The request goes out on the first pull, so the response head need not wait for it.
        let output = EngineBody.deferred { [engine] in
            try await engine.containerLogs(
                mode.id, follow: options.follow, tail: options.tail, since: options.since,
                timestamps: options.timestamps, timeout: headTimeout
            ).body
        }
        var decoder = LogDecoder(framed: !mode.tty, timestamps: options.timestamps)
        decoder.errorContext = "logs of container \(id)"
        return .decoding(output, with: decoder)
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

    /// What a stream that already started ends with: the typed error when there is one.
    static func streamError(_ error: any Error, context: String) -> OcimanError {
        switch error {
        case let error as OcimanError: error
        case let error as EngineError: OcimanError(error, context: context)
        case is CancellationError: .unavailable("\(context): cancelled")
        default: .engineFailure("\(context): \(error)")
        }
    }
}

/// Turns the engine's log bytes into lines: demultiplexes frames (unless the container has a
/// TTY), splits each stream into lines and, with timestamps, takes the engine's time off each
/// log entry.
struct LogDecoder: PullDecoder {
    /// What a failure of the stream below is reported as.
    var errorContext = "logs"
    private let framed: Bool
    private let timestamps: Bool
    private var frames = FrameDecoder()
    private var splitter = LineSplitter()
    /// Per stream, the time of the entry in which its unfinished line began.
    private var pendingTimestamp: [StreamKind: String] = [:]

    init(framed: Bool, timestamps: Bool) {
        self.framed = framed
        self.timestamps = timestamps
    }

    mutating func feed(_ bytes: some Collection<UInt8>) throws -> [LogLine] {
        guard framed else {
            return splitter.feed(bytes, stream: .stdout).map { line(from: $0) }
        }
        var lines: [LogLine] = []
        for frame in try frames.feed(bytes) where frame.stream != .stdin {
            guard timestamps else {
                lines += splitter.feed(frame).map { line(from: $0) }
                continue
            }
            // Each frame is one log entry: "<RFC 3339 time> <text>". A line can span several
            // entries (Docker splits long ones), so it keeps the time of the entry it began in.
            let payload = frame.payload
            let space = payload.firstIndex(of: UInt8(ascii: " ")) ?? payload.endIndex
            let time = String(decoding: payload[..<space], as: UTF8.self)
            let text = payload[min(space + 1, payload.endIndex)...]
            var start = pendingTimestamp[frame.stream] ?? time
            for piece in splitter.feed(text, stream: frame.stream) {
                lines.append(LogLine(stream: Self.standard(piece.stream), text: piece.text, timestamp: start))
                start = time
            }
            pendingTimestamp[frame.stream] = text.isEmpty || text.last == UInt8(ascii: "\n") ? nil : start
        }
        return lines
    }

    mutating func feed(_ chunk: ByteBuffer) throws -> [LogLine] {
        try feed(chunk.readableBytesView)
    }

    func fail(_ error: any Error) throws -> [LogLine] {
        throw Runtime.streamError(error, context: errorContext)
    }

    mutating func finish() throws -> [LogLine] {
        if framed { try frames.finish() }
        return splitter.finish().map { piece in
            if framed && timestamps {
                return LogLine(stream: Self.standard(piece.stream), text: piece.text, timestamp: pendingTimestamp[piece.stream])
            }
            return line(from: piece)
        }
    }

    /// Without frames the timestamp (if requested) leads each line.
    private func line(from piece: LineSplitter.Line) -> LogLine {
        let stream = Self.standard(piece.stream)
        guard timestamps, !framed else { return LogLine(stream: stream, text: piece.text) }
        let bytes = piece.bytes
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")) else {
            return LogLine(stream: stream, text: "", timestamp: piece.text)
        }
        return LogLine(
            stream: stream,
            text: String(decoding: bytes[(space + 1)...], as: UTF8.self),
            timestamp: String(decoding: bytes[..<space], as: UTF8.self))
    }

    static func standard(_ kind: StreamKind) -> StandardStream {
        kind == .stderr ? .stderr : .stdout
    }
}
