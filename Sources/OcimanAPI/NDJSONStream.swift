import PulledStreams
import Foundation
import OcimanCore
import OpenAPIRuntime
import RFC3339

/// Turns a stream of core events into an ndjson body: one JSON object a line, ending with the
/// translator's last lines or an `error` line. Lines are made only as the transport asks for
/// them, so a client that stops reading stops the events (and the engine) behind them; a client
/// that leaves drops the stream, which cancels the work behind it.
enum NDJSONStream {
    static func body<Translator: NDJSONTranslator>(
        _ events: AsyncThrowingStream<Translator.Event, any Error>,
        _ translator: Translator
    ) -> HTTPBody {
        let lines = AsyncThrowingStream.decoding(events, with: Lines(translator: translator))
        return HTTPBody(lines, length: .unknown, iterationBehavior: .single)
    }

    private struct Lines<Translator: NDJSONTranslator>: PullDecoder {
        var translator: Translator

        mutating func feed(_ event: Translator.Event) -> [ArraySlice<UInt8>] {
            translator.lines(for: event).map(NDJSONStream.encode)
        }

        mutating func finish() -> [ArraySlice<UInt8>] {
            translator.finish().map(NDJSONStream.encode)
        }

        func fail(_ error: any Error) -> [ArraySlice<UInt8>] {
            let message = (error as? OcimanError)?.description ?? "\(error)"
            return [NDJSONStream.encode(translator.error(message))]
        }
    }

    fileprivate static func encode(_ line: some Encodable) -> ArraySlice<UInt8> {
        var bytes = (try? encoder.encode(line)).map { [UInt8]($0) } ?? Array(#"{"type":"error","message":"encoding failed"}"#.utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes[...]
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .rfc3339
        return encoder
    }()
}

protocol NDJSONTranslator: Sendable {
    associatedtype Event: Sendable
    associatedtype Line: Encodable
    mutating func lines(for event: Event) -> [Line]
    /// Lines after the last event when the stream ended without an error.
    mutating func finish() -> [Line]
    func error(_ message: String) -> Line
}
