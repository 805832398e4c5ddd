import Foundation
import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func execInContainer(_ input: Operations.ExecInContainer.Input) async throws -> Operations.ExecInContainer.Output {
        guard case .json(let request) = input.body else {
            throw OcimanError.invalid(field: nil, message: "the request body must be application/json")
        }
        let options = try Self.execOptions(request)
        if Self.wantsNDJSON(input.headers.accept) {
            let events = try await runtime.execStream(input.path.id, options)
            return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(events, ExecEventLines()))))
        }
        let result = try await runtime.exec(input.path.id, options)
        let stdout = String(validating: result.stdout, as: UTF8.self)
        let stderr = String(validating: result.stderr, as: UTF8.self)
        return .ok(
            .init(
                body: .json(
                    .init(
                        exitCode: result.exitCode,
                        stdout: stdout,
                        stderr: stderr,
                        stdoutBase64: stdout == nil ? Data(result.stdout).base64EncodedString() : nil,
                        stderrBase64: stderr == nil ? Data(result.stderr).base64EncodedString() : nil
                    ))))
    }

    public func getContainerLogs(_ input: Operations.GetContainerLogs.Input) async throws -> Operations.GetContainerLogs.Output {
        let query = input.query
        let lines = try await runtime.logs(
            input.path.id,
            LogOptions(
                follow: query.follow ?? false, tail: query.tail, since: query.since, timestamps: query.timestamps ?? false))
        return .ok(.init(body: .applicationXNdjson(NDJSONStream.body(lines, LogEventLines()))))
    }

    static func execOptions(_ request: Components.Schemas.ExecRequest) throws(OcimanError) -> ExecOptions {
        var stdin: ExecStdin?
        switch (request.stdin, request.stdinBase64, ExecStdinMiddleware.spool) {
        case (.some, .some, _), (.some, _, .some), (_, .some, .some):
            throw .invalid(field: "stdin_base64", message: "give either stdin (text) or stdin_base64, not both")
        case (.some(let text), nil, nil):
            stdin = .bytes(Array(text.utf8))
        case (nil, .some(let encoded), nil):
            guard let bytes = Data(base64Encoded: encoded) else {
                throw .invalid(field: "stdin_base64", message: "stdin_base64 is not valid base64")
            }
            stdin = .bytes([UInt8](bytes))
        case (nil, nil, .some(let spool)):
            // Taken out of the body as it arrived (ExecStdinMiddleware).
            stdin = .chunks(spool.chunks())
        case (nil, nil, nil):
            stdin = nil
        }
        return ExecOptions(
            command: request.command,
            environment: request.env?.additionalProperties ?? [:],
            user: request.user,
            workdir: request.workdir,
            stdin: stdin,
            timeoutSeconds: request.timeoutSeconds
        )
    }

    /// NegotiationMiddleware has already chosen: `Accept` holds the one media type to answer (and problem documents).
    static func wantsNDJSON(_ accept: [AcceptHeaderContentType<Operations.ExecInContainer.AcceptableContentType>]) -> Bool {
        accept.contains { $0.contentType == .applicationXNdjson }
    }
}

/// Output chunks become `data` when they are UTF-8, `data_base64` otherwise. A character split
/// across two chunks is held back until its remaining bytes arrive, so text stays text.
struct ExecEventLines: NDJSONTranslator {
    private var held: [StandardStream: [UInt8]] = [:]

    mutating func lines(for event: ExecEvent) -> [Components.Schemas.ExecEvent] {
        switch event {
        case .output(let stream, let bytes):
            var pending = held.removeValue(forKey: stream) ?? []
            pending += bytes
            let cut = Self.completeCharactersEnd(pending)
            if cut < pending.count { held[stream] = Array(pending[cut...]) }
            return cut == 0 ? [] : [Self.output(stream, pending[..<cut])]
        case .exit(let code):
            return flushHeld() + [.exit(.init(_type: .exit, exitCode: code))]
        }
    }

    mutating func finish() -> [Components.Schemas.ExecEvent] { flushHeld() }

    func error(_ message: String) -> Components.Schemas.ExecEvent { .error(.init(_type: .error, message: message)) }

    private mutating func flushHeld() -> [Components.Schemas.ExecEvent] {
        defer { held.removeAll() }
        return [StandardStream.stdout, .stderr].compactMap { stream in
            held[stream].map { Self.output(stream, $0[...]) }
        }
    }

    private static func output(_ stream: StandardStream, _ bytes: ArraySlice<UInt8>) -> Components.Schemas.ExecEvent {
        let text = String(validating: bytes, as: UTF8.self)
        let base64 = text == nil ? Data(bytes).base64EncodedString() : nil
        return stream == .stderr
            ? .stderr(.init(_type: .stderr, data: text, dataBase64: base64))
            : .stdout(.init(_type: .stdout, data: text, dataBase64: base64))
    }

    /// Where the bytes stop being whole UTF-8 characters: before a trailing lead byte whose
    /// continuation bytes have not arrived yet. Anything else (invalid bytes too) is left in.
    static func completeCharactersEnd(_ bytes: [UInt8]) -> Int {
        var index = bytes.count
        while index > max(0, bytes.count - 3) {
            index -= 1
            let byte = bytes[index]
            if byte & 0xC0 == 0x80 { continue }
            guard byte >= 0xC0 else { return bytes.count }
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
            return bytes.count - index < length ? index : bytes.count
        }
        return bytes.count
    }
}

struct LogEventLines: NDJSONTranslator {
    func lines(for line: LogLine) -> [Components.Schemas.LogEvent] {
        let timestamp = EngineTime.optional(line.timestamp)
        return line.stream == .stderr
            ? [.stderr(.init(_type: .stderr, line: line.text, timestamp: timestamp))]
            : [.stdout(.init(_type: .stdout, line: line.text, timestamp: timestamp))]
    }

    func finish() -> [Components.Schemas.LogEvent] { [.end(.init(_type: .end))] }

    func error(_ message: String) -> Components.Schemas.LogEvent { .error(.init(_type: .error, message: message)) }
}
