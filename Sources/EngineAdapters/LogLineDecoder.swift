import EngineDriver
import NIOCore
import OcimanCore
import PulledStreams

/// Turns the engine's log bytes into lines: demultiplexes frames (unless the container has a
/// TTY), splits each stream into lines and, with timestamps, takes the engine's time off each
/// log entry.
struct LogLineDecoder: PullDecoder {
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
                lines.append(LogLine(stream: StandardStream(piece.stream), text: piece.text, timestamp: start))
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
        throw EngineFailure.classifying(error)
    }

    mutating func finish() throws -> [LogLine] {
        if framed { try frames.finish() }
        return splitter.finish().map { piece in
            if framed && timestamps {
                return LogLine(stream: StandardStream(piece.stream), text: piece.text, timestamp: pendingTimestamp[piece.stream])
            }
            return line(from: piece)
        }
    }

    /// Without frames the timestamp (if requested) leads each line.
    private func line(from piece: LineSplitter.Line) -> LogLine {
        let stream = StandardStream(piece.stream)
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
}
