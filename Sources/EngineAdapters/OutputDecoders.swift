import EngineDriver
import Foundation
import NIOCore
import OcimanCore
import PulledStreams

extension StandardStream {
    /// Stdin frames never carry output; they are filtered before this.
    init(_ kind: StreamKind) {
        switch kind {
        case .stdout, .stdin: self = .stdout
        case .stderr: self = .stderr
        }
    }
}

/// Exec output frames to chunks, with the driver's errors classified.
struct OutputChunkDecoder: PullDecoder {
    func feed(_ frame: Frame) -> [OutputChunk] {
        [OutputChunk(StandardStream(frame.stream), frame.payload)]
    }

    func fail(_ error: any Error) throws -> [OutputChunk] {
        throw EngineFailure.classifying(error)
    }
}

/// The engine's build stream (progress objects that do not align with chunks) to progress:
/// `stream` text split into lines, `status` objects as lines, the image id from `aux.ID`, and
/// the error object (which the engines send with HTTP 200) as the failure.
struct BuildProgressDecoder: PullDecoder {
    private var splitter = JSONStreamSplitter()
    private var lines = LineSplitter()

    mutating func feed(_ chunk: ByteBuffer) throws -> [BuildProgress] {
        try feed(chunk.readableBytesView)
    }

    mutating func feed(_ bytes: some Collection<UInt8>) throws -> [BuildProgress] {
        var progress: [BuildProgress] = []
        for value in try splitter.feed(bytes) {
            guard let message = EngineProgressMessage.decode(value) else { continue }
            if let failed = message.failureMessage {
                progress.append(.failed(failed.trimmingCharacters(in: .whitespacesAndNewlines)))
                continue
            }
            if let id = message.aux?.id { progress.append(.built(imageID: id)) }
            if let text = message.stream {
                progress += lines.feed(Array(text.utf8), stream: .stdout).map { .line($0.text) }
            } else if let status = message.status {
                // Pulls of base images report per-layer progress; the status text is enough.
                progress.append(.line(message.id.map { "\($0): \(status)" } ?? status))
            }
        }
        return progress
    }

    mutating func finish() throws -> [BuildProgress] {
        var progress: [BuildProgress] = []
        for value in try splitter.finish() {
            if let message = EngineProgressMessage.decode(value), let failed = message.failureMessage {
                progress.append(.failed(failed.trimmingCharacters(in: .whitespacesAndNewlines)))
            }
        }
        return lines.finish().map { .line($0.text) } + progress
    }

    func fail(_ error: any Error) throws -> [BuildProgress] {
        throw EngineFailure.classifying(error)
    }
}

/// A pull's or push's progress stream: status lines, the digest (from `aux`, a pull's closing
/// "Digest: sha256:…" status or a push's "TAG: digest: sha256:… size: N") and the registry's
/// error object.
struct TransferProgressDecoder: PullDecoder {
    private var splitter = JSONStreamSplitter()

    mutating func feed(_ chunk: ByteBuffer) throws -> [TransferProgress] {
        var progress: [TransferProgress] = []
        for value in try splitter.feed(chunk.readableBytesView) {
            guard let message = EngineProgressMessage.decode(value) else { continue }
            if let failed = message.failureMessage {
                progress.append(.failed(failed.trimmingCharacters(in: .whitespacesAndNewlines)))
                continue
            }
            if let digest = message.aux?.digest { progress.append(.digest(digest)) }
            guard let status = message.status ?? message.stream?.trimmingCharacters(in: .whitespacesAndNewlines), !status.isEmpty else { continue }
            if status.hasPrefix("Digest: ") { progress.append(.digest(String(status.dropFirst("Digest: ".count)))) }
            // A push's closing "TAG: digest: sha256:… size: N" (Podman sends no `aux`).
            if message.aux == nil, let marker = status.range(of: ": digest: ") {
                let digest = status[marker.upperBound...].prefix { $0 != " " }
                if digest.hasPrefix("sha256:") { progress.append(.digest(String(digest))) }
            }
            progress.append(
                .status(status, id: message.id, current: message.progressDetail?.current, total: message.progressDetail?.total))
        }
        return progress
    }

    mutating func finish() throws -> [TransferProgress] {
        _ = try splitter.finish()
        return []
    }

    func fail(_ error: any Error) throws -> [TransferProgress] {
        throw EngineFailure.classifying(error)
    }
}
