import Foundation
import OcimanCore
import OpenAPIRuntime

/// Turns a stream of core events into an ndjson body: one JSON object a line, written as each
/// event arrives, ending with the translator's last lines or an `error` line. A client that
/// leaves stops the pump, which stops iterating `events` and so cancels the work behind them.
enum NDJSONStream {
    static func body<Translator: NDJSONTranslator>(
        _ events: AsyncThrowingStream<Translator.Event, any Error>,
        _ translator: Translator
    ) -> HTTPBody {
        let (bytes, continuation) = AsyncThrowingStream.makeStream(of: ArraySlice<UInt8>.self)
        let pump = Task {
            var translator = translator
            do {
                for try await event in events {
                    for line in translator.lines(for: event) { continuation.yield(encode(line)) }
                }
                for line in translator.finish() { continuation.yield(encode(line)) }
            } catch {
                let message = (error as? OcimanError)?.description ?? "\(error)"
                continuation.yield(encode(translator.error(message)))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in pump.cancel() }
        return HTTPBody(bytes, length: .unknown, iterationBehavior: .single)
    }

    private static func encode(_ line: some Encodable) -> ArraySlice<UInt8> {
        var bytes = (try? encoder.encode(line)).map { [UInt8]($0) } ?? Array(#"{"type":"error","message":"encoding failed"}"#.utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes[...]
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
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
