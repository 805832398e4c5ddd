import EngineDriver
import NIOCore
import OcimanCore
import PulledStreams

extension ProcessConnection {
    /// A hijacked engine connection as the core sees it: with a TTY the output is one raw
    /// stream (stdout), without one it is 8-byte framed stdout and stderr.
    init(_ connection: HijackedConnection, tty: Bool) {
        self.init(
            output: .decoding(connection.output, with: HijackedOutputDecoder(tty: tty)),
            write: { bytes in try await connection.write(bytes) },
            finishWriting: { try await connection.finishWriting() },
            close: { connection.close() })
    }
}

/// Engine bytes to output chunks, split into frames unless the process has a TTY.
private struct HijackedOutputDecoder: PullDecoder {
    let tty: Bool
    var frames = FrameDecoder()

    init(tty: Bool) { self.tty = tty }

    mutating func feed(_ chunk: ByteBuffer) throws -> [OutputChunk] {
        if tty { return [OutputChunk(.stdout, Array(chunk.readableBytesView))] }
        return try frames.feed(chunk.readableBytesView).compactMap { frame in
            frame.payload.isEmpty ? nil : OutputChunk(StandardStream(frame.stream), frame.payload)
        }
    }

    mutating func finish() throws -> [OutputChunk] {
        if !tty { try frames.finish() }
        return []
    }

    func fail(_ error: any Error) throws -> [OutputChunk] {
        throw EngineFailure.classifying(error)
    }
}
