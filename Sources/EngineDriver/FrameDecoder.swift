/// Which standard stream a piece of container output belongs to.
public enum StreamKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case stdin = 0
    case stdout = 1
    case stderr = 2

    public var description: String {
        switch self {
        case .stdin: "stdin"
        case .stdout: "stdout"
        case .stderr: "stderr"
        }
    }
}

/// One frame of multiplexed output.
public struct Frame: Sendable, Equatable {
    public var stream: StreamKind
    public var payload: [UInt8]

    public init(stream: StreamKind, payload: [UInt8]) {
        self.stream = stream
        self.payload = payload
    }
}

/// Decodes the multiplexed stdout/stderr framing of exec, attach and logs without a TTY.
///
/// Each frame is an 8-byte header — stream type, three zero bytes, big-endian UInt32 payload
/// length — then the payload. Frames do not line up with reads, so the decoder keeps the
/// partial header or payload between calls. Whether output is framed at all must be decided
/// from the TTY flag, not the Content-Type (Podman labels framed output as raw, SPEC §2).
/// After a thrown error the stream is unusable and every further call throws again.
public struct FrameDecoder: Sendable {
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// The header's stream byte is not 0, 1 or 2: the output is not framed (a TTY) or corrupt.
        case invalidStreamType(UInt8)
        /// Bytes 1–3 of the header are not zero.
        case invalidHeader([UInt8])
        /// Docker's stream type 3: the daemon reports an error inside the stream.
        case engineError(String)
        /// A frame announced more payload than `maxFrameSize`; refused before buffering it.
        case frameTooLarge(length: Int, limit: Int)
        /// The stream ended inside a frame.
        case truncated(headerBytes: Int, payloadBytes: Int, expectedPayload: Int?)

        public var description: String {
            switch self {
            case .invalidStreamType(let type): "invalid stream type \(type) in output frame header"
            case .invalidHeader(let header): "invalid output frame header \(header)"
            case .engineError(let message): "engine error in output stream: \(message)"
            case .frameTooLarge(let length, let limit): "output frame of \(length) bytes exceeds \(limit)"
            case .truncated(let header, let payload, let expected):
                if let expected {
                    "output ended inside a frame: \(payload) of \(expected) payload bytes"
                } else {
                    "output ended inside a frame header: \(header) of 8 bytes"
                }
            }
        }
    }

    /// Docker's `stdcopy.Systemerr`.
    private static let systemErrorType: UInt8 = 3

    public let maxFrameSize: Int
    private var header: [UInt8] = []
    /// Set once the header is complete: the frame's stream byte and payload length.
    private var current: (type: UInt8, length: Int)?
    private var payload: [UInt8] = []
    private var failure: Error?

    /// Engines send frames of at most a few tens of KiB; the limit only stops a corrupt length
    /// from reserving gigabytes.
    public init(maxFrameSize: Int = 16 << 20) {
        precondition(maxFrameSize > 0)
        self.maxFrameSize = maxFrameSize
        header.reserveCapacity(8)
    }

    /// Feeds the next bytes; returns every frame completed by them, in order. Zero-length frames
    /// are returned too (with an empty payload). When the bytes hold complete frames and then
    /// an error, the frames are returned and the error is thrown by the next call.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws -> [Frame] {
        if let failure { throw failure }
        var frames: [Frame] = []
        do {
            if try bytes.withContiguousStorageIfAvailable({ try decode($0, into: &frames) }) == nil {
                try Array(bytes).withUnsafeBufferPointer { try decode($0, into: &frames) }
            }
        } catch let error as Error {
            failure = error
            if frames.isEmpty { throw error }
        }
        return frames
    }

    /// Ends the stream; throws if it stopped inside a frame.
    public mutating func finish() throws {
        if let failure { throw failure }
        if current != nil || !header.isEmpty {
            let error = Error.truncated(
                headerBytes: header.count, payloadBytes: payload.count, expectedPayload: current?.length)
            failure = error
            throw error
        }
    }

    /// True while part of a frame is buffered.
    public var isInsideFrame: Bool { current != nil || !header.isEmpty }

    private mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>, into frames: inout [Frame]) throws {
        var index = 0
        while true {
            if let (type, length) = current {
                let take = min(length - payload.count, bytes.count - index)
                payload.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<index + take]))
                index += take
                guard payload.count == length else { break }
                var complete: [UInt8] = []
                swap(&complete, &payload)
                current = nil
                if type == Self.systemErrorType {
                    throw Error.engineError(String(decoding: complete, as: UTF8.self))
                }
                frames.append(Frame(stream: StreamKind(rawValue: type)!, payload: complete))
            } else {
                guard index < bytes.count else { break }
                let take = min(8 - header.count, bytes.count - index)
                header.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<index + take]))
                index += take
                guard header.count == 8 else { break }
                try startFrame()
            }
        }
    }

    private mutating func startFrame() throws {
        let type = header[0]
        guard type <= Self.systemErrorType else { throw Error.invalidStreamType(type) }
        guard header[1] == 0, header[2] == 0, header[3] == 0 else { throw Error.invalidHeader(header) }
        let length = header[4...7].reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxFrameSize else { throw Error.frameTooLarge(length: length, limit: maxFrameSize) }
        header.removeAll(keepingCapacity: true)
        current = (type, length)
        payload.reserveCapacity(length)
    }
}

/// Turns payloads of each stream into lines (container logs are read line by line).
///
/// Streams are buffered separately, so interleaved stdout and stderr frames never mix within
/// a line. A line ends at `\n`; a `\r` before it is dropped (`\r\n`), a lone `\r` (progress
/// output) is kept. A line longer than `maxLineLength` is handed out in pieces of that length
/// so a stream without newlines cannot grow memory without bound.
public struct LineSplitter: Sendable {
    public struct Line: Sendable, Equatable {
        public var stream: StreamKind
        /// Without the line terminator.
        public var bytes: [UInt8]

        public init(stream: StreamKind, bytes: [UInt8]) {
            self.stream = stream
            self.bytes = bytes
        }

        /// The line as text; invalid UTF-8 becomes U+FFFD.
        public var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    private struct Pending: Sendable {
        var bytes: [UInt8] = []
        /// The last piece was cut at `maxLineLength`: a newline right after it ends that line
        /// rather than adding an empty one.
        var cut = false
    }

    public let maxLineLength: Int
    /// Unterminated line per stream, indexed by raw value.
    private var pending = [Pending](repeating: Pending(), count: StreamKind.allCases.count)

    public init(maxLineLength: Int = 1 << 20) {
        precondition(maxLineLength > 0)
        self.maxLineLength = maxLineLength
    }

    public mutating func feed(_ frame: Frame) -> [Line] {
        feed(frame.payload, stream: frame.stream)
    }

    /// Raw (TTY) output is all one stream: feed it as `.stdout`.
    public mutating func feed(_ bytes: some Collection<UInt8>, stream: StreamKind) -> [Line] {
        if let lines = bytes.withContiguousStorageIfAvailable({ split($0, stream) }) { return lines }
        return Array(bytes).withUnsafeBufferPointer { split($0, stream) }
    }

    /// Ends all streams: returns each stream's unterminated last line, if any.
    public mutating func finish() -> [Line] {
        StreamKind.allCases.compactMap { stream in
            let slot = Int(stream.rawValue)
            pending[slot].cut = false
            return pending[slot].bytes.isEmpty ? nil : take(slot, stream, terminated: true)
        }
    }

    private mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, _ stream: StreamKind) -> [Line] {
        var lines: [Line] = []
        let slot = Int(stream.rawValue)
        var start = 0
        while start < bytes.count {
            let room = maxLineLength - pending[slot].bytes.count
            let window = bytes[start..<min(bytes.count, start + room)]
            if let newline = window.firstIndex(of: UInt8(ascii: "\n")) {
                pending[slot].bytes.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<newline]))
                if pending[slot].bytes.isEmpty && pending[slot].cut {
                    pending[slot].cut = false
                } else {
                    lines.append(take(slot, stream, terminated: true))
                }
                start = newline + 1
            } else {
                pending[slot].bytes.append(contentsOf: UnsafeBufferPointer(rebasing: window))
                start = window.endIndex
                if pending[slot].bytes.count == maxLineLength {
                    lines.append(take(slot, stream, terminated: false))
                    pending[slot].cut = true
                }
            }
        }
        return lines
    }

    private mutating func take(_ slot: Int, _ stream: StreamKind, terminated: Bool) -> Line {
        var bytes: [UInt8] = []
        swap(&bytes, &pending[slot].bytes)
        pending[slot].cut = false
        if terminated, bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return Line(stream: stream, bytes: bytes)
    }
}
